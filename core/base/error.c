#include <rex/rex.h>

const char *rex_strerror(int err) {
    switch (err) {
    case REX_OK:
        return "success";
    case REX_EINVAL:
        return "invalid argument";
    case REX_ENOMEM:
        return "out of memory";
    case REX_EIO:
        return "input/output error";
    case REX_ECONN:
        return "connection failed";
    case REX_EPROTO:
        return "protocol error";
    case REX_ENOTFOUND:
        return "not found";
    case REX_ETIMEDOUT:
        return "timed out";
    case REX_ELUA:
        return "lua error";
    case REX_ENOTIMPL:
        return "not implemented yet";
    default:
        return "unknown error";
    }
}
