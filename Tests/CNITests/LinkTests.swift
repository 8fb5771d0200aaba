import CMnl
import CNftnl
import Testing

/// The C shims link and their libraries answer: a netlink socket through libmnl, and an nftables
/// table object through libnftnl (what the Netlink and NFTables modules are built on).
@Suite struct LinkTests {
    @Test func libmnlOpensANetlinkSocket() throws {
        let nl = try #require(mnl_socket_open(0))  // NETLINK_ROUTE
        defer { mnl_socket_close(nl) }
        #expect(mnl_socket_bind(nl, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0)
        #expect(mnl_socket_get_portid(nl) != 0)
    }

    @Test func libnftnlBuildsATable() throws {
        let t = try #require(nftnl_table_alloc())
        defer { nftnl_table_free(t) }
        nftnl_table_set_str(t, UInt16(NFTNL_TABLE_NAME.rawValue), "swift_cni_probe")
        nftnl_table_set_u32(t, UInt16(NFTNL_TABLE_FAMILY.rawValue), UInt32(NFPROTO_INET))
        #expect(String(cString: nftnl_table_get_str(t, UInt16(NFTNL_TABLE_NAME.rawValue))) == "swift_cni_probe")
    }
}
