/* REX's API-key format (rex-behaviour.md §2.4): "salt:iv:tag:ciphertext" in standard base64,
 * key = scrypt(master key, salt, N=16384, r=8, p=1, 32 bytes), AES-256-GCM with a 16-byte IV and
 * no additional data. Error messages never include key material. */
#include <rex/rex.h>
#include <rex/store.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdio.h>
#include <string.h>

enum { SALT_LEN = 32, IV_LEN = 16, TAG_LEN = 16, KEY_LEN = 32 };

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes standard (or URL-safe) base64, padding optional, whitespace not allowed. Returns the
 * number of bytes written to out (capacity at least len*3/4+3), or -1. */
static long b64decode(const char *s, size_t len, unsigned char *out) {
    while (len && s[len - 1] == '=')
        len--;
    unsigned long acc = 0;
    int bits = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6)
        return -1; /* a single dangling character */
    return n;
}

static char *b64encode(const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = rex_malloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}

static int derive(const char *master, const unsigned char *salt, unsigned char key[KEY_LEN]) {
    /* maxmem 0 = OpenSSL's default (32 MB), enough for N=16384, r=8 (16 MB) */
    return EVP_PBE_scrypt(master, strlen(master), salt, SALT_LEN, 16384, 8, 1, 0, key, KEY_LEN) == 1
               ? 0
               : REX_EINVAL;
}

void rex_store_secret_free(char *s, size_t len) {
    if (!s)
        return;
    OPENSSL_cleanse(s, len);
    rex_free(s);
}

int rex_store_decrypt_api_key(const char *stored, const char *master, char **out, size_t *outlen,
                              char *err, size_t errlen) {
    if (!stored || !*stored || !master || !*master) {
        snprintf(err, errlen, "Decryption requires both encrypted text and master key");
        return REX_EINVAL;
    }
    const char *part[4];
    size_t plen[4];
    const char *p = stored;
    int n = 0;
    for (;;) {
        const char *c = strchr(p, ':');
        if (n == 4) {
            n = 5;
            break;
        }
        part[n] = p;
        plen[n] = c ? (size_t)(c - p) : strlen(p);
        n++;
        if (!c)
            break;
        p = c + 1;
    }
    if (n != 4) {
        snprintf(err, errlen, "Invalid encrypted text format");
        return REX_EINVAL;
    }
    for (int i = 0; i < 4; i++)
        if (plen[i] == 0) {
            snprintf(err, errlen, "Invalid encrypted text format: missing parts");
            return REX_EINVAL;
        }
    unsigned char salt[SALT_LEN + 3], iv[IV_LEN + 3], tag[TAG_LEN + 3];
    if (plen[0] > 48 || plen[1] > 28 || plen[2] > 28) {
        snprintf(err, errlen, "Invalid encrypted text format: bad salt, iv or tag length");
        return REX_EINVAL;
    }
    long ns = b64decode(part[0], plen[0], salt);
    long ni = b64decode(part[1], plen[1], iv);
    long nt = b64decode(part[2], plen[2], tag);
    if (ns != SALT_LEN || ni != IV_LEN || nt != TAG_LEN) {
        snprintf(err, errlen, "Invalid encrypted text format: bad salt, iv or tag length");
        return REX_EINVAL;
    }
    unsigned char *ct = rex_malloc(plen[3] * 3 / 4 + 4);
    long nc = b64decode(part[3], plen[3], ct);
    if (nc < 0) {
        rex_free(ct);
        snprintf(err, errlen, "Invalid encrypted text format: ciphertext is not base64");
        return REX_EINVAL;
    }
    unsigned char key[KEY_LEN];
    if (derive(master, salt, key)) {
        rex_free(ct);
        snprintf(err, errlen, "API key decryption failed: scrypt key derivation failed");
        return REX_EINVAL;
    }
    char *pt = rex_malloc((size_t)nc + 1);
    int ok = 0, len = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) == 1 &&
        EVP_DecryptUpdate(ctx, (unsigned char *)pt, &len, ct, (int)nc) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
        EVP_DecryptFinal_ex(ctx, (unsigned char *)pt + len, &fin) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(key, sizeof(key));
    rex_free(ct);
    if (!ok) {
        rex_store_secret_free(pt, (size_t)nc + 1);
        snprintf(err, errlen,
                 "API key decryption failed: authentication tag mismatch (wrong "
                 "ENCRYPTION_MASTER_KEY or corrupted key)");
        return REX_EINVAL;
    }
    pt[len + fin] = 0;
    *out = pt;
    if (outlen)
        *outlen = (size_t)nc + 1;
    return 0;
}

int rex_store_encrypt_api_key(const char *plaintext, const char *master,
                              const unsigned char salt[32], const unsigned char iv[16], char **out,
                              char *err, size_t errlen) {
    if (!plaintext || !*plaintext || !master || !*master) {
        snprintf(err, errlen, "Encryption requires both plaintext and master key");
        return REX_EINVAL;
    }
    unsigned char key[KEY_LEN], tag[TAG_LEN];
    if (derive(master, salt, key)) {
        snprintf(err, errlen, "scrypt key derivation failed");
        return REX_EINVAL;
    }
    size_t n = strlen(plaintext);
    unsigned char *ct = rex_malloc(n + 16);
    int len = 0, fin = 0, ok = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) == 1 &&
        EVP_EncryptUpdate(ctx, ct, &len, (const unsigned char *)plaintext, (int)n) == 1 &&
        EVP_EncryptFinal_ex(ctx, ct + len, &fin) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        rex_free(ct);
        snprintf(err, errlen, "AES-256-GCM encryption failed");
        return REX_EINVAL;
    }
    char *a = b64encode(salt, SALT_LEN), *b = b64encode(iv, IV_LEN), *c = b64encode(tag, TAG_LEN),
         *d = b64encode(ct, (size_t)(len + fin));
    size_t total = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 4;
    *out = rex_malloc(total);
    snprintf(*out, total, "%s:%s:%s:%s", a, b, c, d);
    rex_free(a);
    rex_free(b);
    rex_free(c);
    rex_free(d);
    rex_free(ct);
    return 0;
}
