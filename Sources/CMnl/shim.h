#ifndef SWIFT_CNI_CMNL_H
#define SWIFT_CNI_CMNL_H
#include <libmnl/libmnl.h>
#endif
