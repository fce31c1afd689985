/* REX's API-key format (rex-behaviour.md §2.4): the known-answer vector, round trips, and the
 * error messages, which never carry key material. */
#include "rextest.h"

#include <rex/rex.h>
#include <rex/store.h>

static char err[512];

static const char *VECTOR = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=:AgICAgICAgICAgICAgICAg==:"
                            "esIhfQSIMErsp66KgUrNqg==:gGl1X2+2P4NtE8HWMKa4v60i";

TEST(decrypts_the_spec_vector) {
    char *out = NULL;
    size_t cap = 0;
    CHECK_INT(rex_store_decrypt_api_key(VECTOR, "test-master-key", &out, &cap, err, sizeof(err)),
              0);
    CHECK_STR(out, "sk-test-1234567890");
    rex_store_secret_free(out, cap);
}

TEST(encrypts_to_the_spec_vector) {
    unsigned char salt[32], iv[16];
    memset(salt, 1, sizeof(salt));
    memset(iv, 2, sizeof(iv));
    char *out = NULL;
    CHECK_INT(rex_store_encrypt_api_key("sk-test-1234567890", "test-master-key", salt, iv, &out,
                                        err, sizeof(err)),
              0);
    CHECK_STR(out, VECTOR);
    rex_free(out);
}

TEST(round_trip_unicode_and_long) {
    unsigned char salt[32], iv[16];
    for (int i = 0; i < 32; i++)
        salt[i] = (unsigned char)(i * 7 + 3);
    for (int i = 0; i < 16; i++)
        iv[i] = (unsigned char)(255 - i);
    char plain[600];
    memset(plain, 'k', sizeof(plain) - 1);
    plain[sizeof(plain) - 1] = 0;
    memcpy(plain, "cl\xc3\xa9-", 5);
    char *enc = NULL, *dec = NULL;
    size_t cap = 0;
    CHECK_INT(rex_store_encrypt_api_key(plain, "m\xc3\xa4ster", salt, iv, &enc, err, sizeof(err)),
              0);
    CHECK_INT(rex_store_decrypt_api_key(enc, "m\xc3\xa4ster", &dec, &cap, err, sizeof(err)), 0);
    CHECK_STR(dec, plain);
    rex_store_secret_free(dec, cap);
    rex_free(enc);
}

TEST(wrong_master_key_is_a_clear_error_without_secrets) {
    char *out = NULL;
    CHECK_INT(rex_store_decrypt_api_key(VECTOR, "wrong-key", &out, NULL, err, sizeof(err)),
              REX_EINVAL);
    CHECK(out == NULL);
    CHECK_CONTAINS(err, "authentication tag mismatch");
    CHECK(strstr(err, "wrong-key") == NULL);
    CHECK(strstr(err, "gGl1X2") == NULL);
}

TEST(malformed_inputs) {
    char *out = NULL;
    CHECK_INT(rex_store_decrypt_api_key("a:b:c", "k", &out, NULL, err, sizeof(err)), REX_EINVAL);
    CHECK_STR(err, "Invalid encrypted text format");
    CHECK_INT(rex_store_decrypt_api_key("a:b:c:d:e", "k", &out, NULL, err, sizeof(err)),
              REX_EINVAL);
    CHECK_STR(err, "Invalid encrypted text format");
    CHECK_INT(rex_store_decrypt_api_key("a::c:d", "k", &out, NULL, err, sizeof(err)), REX_EINVAL);
    CHECK_STR(err, "Invalid encrypted text format: missing parts");
    CHECK_INT(rex_store_decrypt_api_key("", "k", &out, NULL, err, sizeof(err)), REX_EINVAL);
    CHECK_STR(err, "Decryption requires both encrypted text and master key");
    CHECK_INT(rex_store_decrypt_api_key(VECTOR, "", &out, NULL, err, sizeof(err)), REX_EINVAL);
    CHECK_STR(err, "Decryption requires both encrypted text and master key");
    CHECK_INT(rex_store_decrypt_api_key("AAAA:AgICAgICAgICAgICAgICAg==:esIhfQSIMErsp66KgUrNqg==:gG",
                                        "k", &out, NULL, err, sizeof(err)),
              REX_EINVAL);
    CHECK_CONTAINS(err, "length");
    CHECK_INT(rex_store_decrypt_api_key(
                  "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=:AgICAgICAgICAgICAgICAg==:"
                  "esIhfQSIMErsp66KgUrNqg==:!!!!",
                  "k", &out, NULL, err, sizeof(err)),
              REX_EINVAL);
    CHECK_CONTAINS(err, "base64");
    unsigned char salt[32] = {0}, iv[16] = {0};
    CHECK_INT(rex_store_encrypt_api_key("", "k", salt, iv, &out, err, sizeof(err)), REX_EINVAL);
    CHECK_STR(err, "Encryption requires both plaintext and master key");
}

TEST(first_time_is_once_per_key) {
    CHECK_INT(rex_store_first_time("unit:a"), 1);
    CHECK_INT(rex_store_first_time("unit:a"), 0);
    CHECK_INT(rex_store_first_time("unit:b"), 1);
}

TEST(migrations_are_embedded_in_order) {
    CHECK(rex_store_migration_count() >= 2);
    CHECK_STR(rex_store_migration_name(0), "0001_rex_schema");
    CHECK_STR(rex_store_migration_name(1), "0002_pgvector");
    CHECK(rex_store_migration_name(rex_store_migration_count()) == NULL);
}
