/* rex.http_c: blocking HTTP requests through libcurl with an SSRF guard (see http.h). */
#include "runtime/http.h"

#include "base/buf.h"
#include "runtime/pool.h"

#include <rex/rex.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HTTP_DEFAULT_MAX_BYTES (10 * 1024 * 1024)
#define HTTP_MAX_ADDRS 16

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- address classification ------------------------------------------------------------- */

static int v4_private(const unsigned char *a) {
    if (a[0] == 0 || a[0] == 10 || a[0] == 127)
        return 1;
    if (a[0] == 100 && (a[1] & 0xC0) == 64) /* 100.64/10 shared address space */
        return 1;
    if (a[0] == 169 && a[1] == 254)
        return 1;
    if (a[0] == 172 && (a[1] & 0xF0) == 16)
        return 1;
    if (a[0] == 192 && a[1] == 168)
        return 1;
    if (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) /* 192.0.0/24, 192.0.2/24 */
        return 1;
    if (a[0] == 198 && (a[1] & 0xFE) == 18) /* 198.18/15 benchmarking */
        return 1;
    if (a[0] == 198 && a[1] == 51 && a[2] == 100)
        return 1;
    if (a[0] == 203 && a[1] == 0 && a[2] == 113)
        return 1;
    if (a[0] >= 224) /* multicast, reserved, broadcast */
        return 1;
    return 0;
}

static int v6_private(const unsigned char *a) {
    static const unsigned char zero[16] = {0};
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1)) /* :: and ::1 */
        return 1;
    if (!memcmp(a, zero, 10) && a[10] == 0xFF && a[11] == 0xFF) /* ::ffff:a.b.c.d */
        return v4_private(a + 12);
    if (!memcmp(a, zero, 12)) /* deprecated IPv4-compatible ::a.b.c.d */
        return 1;
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xFF && a[3] == 0x9B) /* 64:ff9b::/96 NAT64 */
        return v4_private(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) /* 2002::/16 6to4 */
        return v4_private(a + 2);
    if ((a[0] & 0xFE) == 0xFC) /* fc00::/7 unique local */
        return 1;
    if (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) /* fe80::/10 link-local */
        return 1;
    if (a[0] == 0xFE && (a[1] & 0xC0) == 0xC0) /* fec0::/10 site-local (deprecated) */
        return 1;
    if (a[0] == 0xFF) /* multicast */
        return 1;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0D && a[3] == 0xB8) /* documentation */
        return 1;
    return 0;
}

int rex_http_address_is_private(const char *addr) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, addr, buf) == 1)
        return v4_private(buf);
    if (inet_pton(AF_INET6, addr, buf) == 1)
        return v6_private(buf);
    return -1;
}

/* addr inside "net/prefix"? */
static int cidr_match(const char *cidr, const char *addr) {
    char net[64];
    const char *slash = strchr(cidr, '/');
    size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
    if (n >= sizeof(net))
        return 0;
    memcpy(net, cidr, n);
    net[n] = '\0';
    unsigned char a[16], b[16];
    int len;
    if (inet_pton(AF_INET, net, a) == 1) {
        if (inet_pton(AF_INET, addr, b) != 1) {
            unsigned char m[16];
            if (inet_pton(AF_INET6, addr, m) == 1 && !memcmp(m, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
                memcpy(b, m + 12, 4);
            else
                return 0;
        }
        len = 4;
    } else if (inet_pton(AF_INET6, net, a) == 1) {
        if (inet_pton(AF_INET6, addr, b) != 1)
            return 0;
        len = 16;
    } else {
        return 0;
    }
    int bits = len * 8;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (*end || p < 0 || p > bits)
            return 0;
        bits = (int)p;
    }
    int full = bits / 8, rem = bits % 8;
    if (memcmp(a, b, (size_t)full))
        return 0;
    if (rem) {
        unsigned char mask = (unsigned char)(0xFF << (8 - rem));
        if ((a[full] & mask) != (b[full] & mask))
            return 0;
    }
    return 1;
}

int rex_http_allowlisted(const char *allowlist, const char *host, const char *addr) {
    if (!allowlist || !*allowlist)
        return 0;
    const char *p = allowlist;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        size_t n = (size_t)(end - start);
        if (n == 0 || n >= 256)
            continue;
        char item[256];
        memcpy(item, start, n);
        item[n] = '\0';
        if (item[0] == '[' && item[n - 1] == ']') {
            memmove(item, item + 1, n - 2);
            item[n - 2] = '\0';
        }
        if (host && !strcasecmp(item, host))
            return 1;
        if (addr && cidr_match(item, addr))
            return 1;
    }
    return 0;
}

/* ---- request ----------------------------------------------------------------------------- */

struct resp {
    rex_buf body;
    rex_buf headers; /* raw header lines of the last response */
    size_t max_bytes;
    int too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct resp *r = ud;
    size_t n = size * nmemb;
    if (r->body.len + n > r->max_bytes) {
        r->too_big = 1;
        return 0;
    }
    rex_buf_add(&r->body, ptr, n);
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct resp *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !memcmp(ptr, "HTTP/", 5))
        r->headers.len = 0; /* a new response (after 100-continue or similar) */
    if (r->headers.len + n > 256 * 1024)
        return 0;
    rex_buf_add(&r->headers, ptr, n);
    return n;
}

static const char *opt_string(lua_State *L, int t, const char *k, const char *def) {
    lua_getfield(L, t, k);
    const char *v = lua_isstring(L, -1) ? lua_tostring(L, -1) : def;
    lua_pop(L, 1); /* the string stays referenced by the options table */
    return v;
}

static double opt_number(lua_State *L, int t, const char *k, double def) {
    lua_getfield(L, t, k);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

static int fail(lua_State *L, const char *kind, const char *msg) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, kind);
    return 3;
}

/* Pushes the response headers as a table {lower-case name = value} and the status text. */
static void push_headers(lua_State *L, const rex_buf *h, char *status_text, size_t stlen) {
    lua_newtable(L);
    status_text[0] = '\0';
    const char *p = h->data, *end = h->data + h->len;
    int first = 1;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *line_end = le;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        if (first) {
            /* HTTP/1.1 200 OK */
            const char *sp = memchr(p, ' ', (size_t)(line_end - p));
            if (sp) {
                const char *sp2 = memchr(sp + 1, ' ', (size_t)(line_end - sp - 1));
                if (sp2) {
                    size_t n = (size_t)(line_end - sp2 - 1);
                    if (n >= stlen)
                        n = stlen - 1;
                    memcpy(status_text, sp2 + 1, n);
                    status_text[n] = '\0';
                }
            }
            first = 0;
        } else {
            const char *colon = memchr(p, ':', (size_t)(line_end - p));
            if (colon) {
                size_t kn = (size_t)(colon - p);
                char key[256];
                if (kn > 0 && kn < sizeof(key)) {
                    for (size_t i = 0; i < kn; i++)
                        key[i] = (char)tolower((unsigned char)p[i]);
                    key[kn] = '\0';
                    const char *v = colon + 1;
                    while (v < line_end && (*v == ' ' || *v == '\t'))
                        v++;
                    lua_getfield(L, -1, key);
                    if (lua_isstring(L, -1)) {
                        /* repeated header: joined with ", " as fetch does */
                        lua_pushliteral(L, ", ");
                        lua_pushlstring(L, v, (size_t)(line_end - v));
                        lua_concat(L, 3);
                    } else {
                        lua_pop(L, 1);
                        lua_pushlstring(L, v, (size_t)(line_end - v));
                    }
                    lua_setfield(L, -2, key);
                }
            }
        }
        p = nl ? nl + 1 : end;
    }
}

/* request{url=, method=, headers={}, body=, timeout_ms=, max_bytes=, allowlist=}
 * -> {status=, status_text=, headers={}, body=} | nil, message, kind
 * kind: "refused", "timeout", "too_large", "invalid", "network". */
static int l_request(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    pthread_once(&g_curl_once, curl_init_once);
    const char *url = opt_string(L, 1, "url", NULL);
    const char *method = opt_string(L, 1, "method", "GET");
    const char *allowlist = opt_string(L, 1, "allowlist", NULL);
    double timeout_ms = opt_number(L, 1, "timeout_ms", 30000);
    double max_bytes = opt_number(L, 1, "max_bytes", HTTP_DEFAULT_MAX_BYTES);
    size_t body_len = 0;
    lua_getfield(L, 1, "body");
    const char *body = lua_isstring(L, -1) ? lua_tolstring(L, -1, &body_len) : NULL;
    lua_pop(L, 1);
    if (!url)
        return fail(L, "invalid", "no url");
    if (timeout_ms < 1)
        timeout_ms = 1;

    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    char msg[512];
    if (curl_url_set(u, CURLUPART_URL, url, 0) || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)) {
        curl_url_cleanup(u);
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        snprintf(msg, sizeof(msg), "invalid URL");
        return fail(L, "invalid", msg);
    }
    curl_url_cleanup(u);
    if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
        snprintf(msg, sizeof(msg), "unsupported URL scheme '%s' (http and https only)", scheme);
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        return fail(L, "invalid", msg);
    }
    curl_free(scheme);
    char hostname[256];
    size_t hl = strlen(host);
    if (hl >= sizeof(hostname)) {
        curl_free(host);
        curl_free(port);
        return fail(L, "invalid", "host name too long");
    }
    if (host[0] == '[' && hl > 2) {
        memcpy(hostname, host + 1, hl - 2);
        hostname[hl - 2] = '\0';
    } else {
        memcpy(hostname, host, hl + 1);
    }
    curl_free(host);
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%s", port);
    curl_free(port);

    /* resolve and check every address */
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(hostname, portstr, &hints, &res);
    if (gai) {
        snprintf(msg, sizeof(msg), "cannot resolve host '%s': %s", hostname, gai_strerror(gai));
        return fail(L, "network", msg);
    }
    char addrs[HTTP_MAX_ADDRS][INET6_ADDRSTRLEN];
    int naddr = 0;
    int host_allowed = rex_http_allowlisted(allowlist, hostname, NULL);
    for (struct addrinfo *ai = res; ai && naddr < HTTP_MAX_ADDRS; ai = ai->ai_next) {
        char a[INET6_ADDRSTRLEN];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, a, sizeof(a), NULL, 0, NI_NUMERICHOST))
            continue;
        int dup = 0;
        for (int i = 0; i < naddr; i++)
            if (!strcmp(addrs[i], a))
                dup = 1;
        if (dup)
            continue;
        int priv = rex_http_address_is_private(a);
        if (priv != 0 && !host_allowed && !rex_http_allowlisted(allowlist, NULL, a)) {
            freeaddrinfo(res);
            snprintf(msg, sizeof(msg),
                     "refused to connect to %s (%s): private, loopback or link-local address not "
                     "in REX_HTTP_ALLOWLIST",
                     hostname, a);
            return fail(L, "refused", msg);
        }
        snprintf(addrs[naddr++], INET6_ADDRSTRLEN, "%s", a);
    }
    freeaddrinfo(res);
    if (naddr == 0)
        return fail(L, "network", "host resolved to no usable address");

    /* pin the checked addresses */
    char resolve[64 + 256 + HTTP_MAX_ADDRS * (INET6_ADDRSTRLEN + 3)];
    int off = snprintf(resolve, sizeof(resolve), "%s:%s:", hostname, portstr);
    for (int i = 0; i < naddr && off < (int)sizeof(resolve) - INET6_ADDRSTRLEN - 4; i++) {
        if (strchr(addrs[i], ':'))
            off += snprintf(resolve + off, sizeof(resolve) - (size_t)off, "%s[%s]", i ? "," : "",
                            addrs[i]);
        else
            off += snprintf(resolve + off, sizeof(resolve) - (size_t)off, "%s%s", i ? "," : "",
                            addrs[i]);
    }

    CURL *c = curl_easy_init();
    if (!c)
        return fail(L, "network", "cannot create an HTTP handle");
    struct curl_slist *rl = curl_slist_append(NULL, resolve);
    struct curl_slist *hdrs = NULL;
    lua_getfield(L, 1, "headers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
                const char *k = lua_tostring(L, -2);
                const char *v = lua_tostring(L, -1);
                if (!strpbrk(k, "\r\n:") && !strpbrk(v, "\r\n")) {
                    size_t n = strlen(k) + strlen(v) + 4;
                    char *line = rex_malloc(n);
                    snprintf(line, n, "%s: %s", k, v);
                    hdrs = curl_slist_append(hdrs, line);
                    rex_free(line);
                }
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    hdrs = curl_slist_append(hdrs, "Expect:");

    struct resp r;
    rex_buf_init(&r.body);
    rex_buf_init(&r.headers);
    r.max_bytes = max_bytes > 0 ? (size_t)max_bytes : HTTP_DEFAULT_MAX_BYTES;
    r.too_big = 0;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, rl);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rex-worker/" REX_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (!strcasecmp(method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcasecmp(method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (!strcasecmp(method, "GET"))
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
    }

    rex_pool_block_begin(); /* a network wait: see runtime/pool.h */
    CURLcode rc = curl_easy_perform(c);
    rex_pool_block_end();
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(rl);
    curl_slist_free_all(hdrs);

    int nret;
    if (rc != CURLE_OK) {
        if (r.too_big) {
            snprintf(msg, sizeof(msg), "response body larger than %zu bytes", r.max_bytes);
            nret = fail(L, "too_large", msg);
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            snprintf(msg, sizeof(msg), "request timed out after %ldms", (long)timeout_ms);
            nret = fail(L, "timeout", msg);
        } else {
            snprintf(msg, sizeof(msg), "request failed: %s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
            nret = fail(L, "network", msg);
        }
    } else {
        char status_text[128];
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
        push_headers(L, &r.headers, status_text, sizeof(status_text));
        lua_setfield(L, -2, "headers");
        lua_pushstring(L, status_text);
        lua_setfield(L, -2, "status_text");
        lua_pushlstring(L, r.body.data ? r.body.data : "", r.body.len);
        lua_setfield(L, -2, "body");
        nret = 1;
    }
    rex_buf_free(&r.body);
    rex_buf_free(&r.headers);
    return nret;
}

static int l_is_private(lua_State *L) {
    int r = rex_http_address_is_private(luaL_checkstring(L, 1));
    if (r < 0)
        lua_pushnil(L);
    else
        lua_pushboolean(L, r);
    return 1;
}

static int l_allowlisted(lua_State *L) {
    const char *list = luaL_optstring(L, 1, NULL);
    const char *host = luaL_optstring(L, 2, NULL);
    const char *addr = luaL_optstring(L, 3, NULL);
    lua_pushboolean(L, rex_http_allowlisted(list, host, addr));
    return 1;
}

int rex__http_open(lua_State *L) {
    static const luaL_Reg fns[] = {{"request", l_request},
                                   {"is_private", l_is_private},
                                   {"allowlisted", l_allowlisted},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
