#ifndef SWIFT_CNI_CNFTNL_H
#define SWIFT_CNI_CNFTNL_H
#include <stdint.h>
/* glibc first: the kernel headers then leave in_addr, sockaddr_in, in6_addr to it (libc-compat.h),
   so this module and SwiftGlibc agree on them. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/rtnetlink.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <libmnl/libmnl.h>
#endif
