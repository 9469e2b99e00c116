#ifndef MODEL_GATEWAY_CPROTOBUFC_SHIM_H
#define MODEL_GATEWAY_CPROTOBUFC_SHIM_H
// The protobuf-c runtime as installed by Debian's libprotobuf-c-dev.
#include <protobuf-c/protobuf-c.h>
#endif
