/* rex.http_c (internal): the HTTP client behind the http-request and llm nodes.
 *
 * One blocking request per call on the calling thread (a worker thread owns its Lua state), with
 * a timeout, a response size limit, http/https only, no redirects, no proxies, and the SSRF guard:
 * the host is resolved here, every address is checked, and a private, loopback, link-local,
 * unspecified, multicast or otherwise reserved address is refused unless the allow-list names the
 * host, the address or a CIDR range holding it. The checked addresses are handed to libcurl
 * (CURLOPT_RESOLVE), so the address connected to is one that was checked. */
#ifndef REX_RUNTIME_HTTP_H
#define REX_RUNTIME_HTTP_H

#include <lua.h>
#include <stddef.h>

/* Returns 1 if the allow-list (comma-separated hosts, IPs, CIDRs; NULL or "" = empty) permits
 * host or the numeric address addr (as getnameinfo prints it). */
int rex_http_allowlisted(const char *allowlist, const char *host, const char *addr);

/* Returns 1 if the numeric address (IPv4 or IPv6 text) is private, loopback, link-local or
 * otherwise not a public unicast address; -1 if it does not parse. */
int rex_http_address_is_private(const char *addr);

/* luaopen-style: pushes the rex.http_c module table: request(opts) -> response | nil, err;
 * is_private(addr); allowlisted(list, host, addr). */
int rex__http_open(lua_State *L);

#endif
