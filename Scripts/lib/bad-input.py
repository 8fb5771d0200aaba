#!/usr/bin/env python3
"""The bad-input table: every plugin binary, run as a runtime runs it, with input that is wrong.

Run inside the test bed's "host" namespace by Scripts/e2e/bad-input.sh. Each case asserts that
the plugin exits 1 (never a signal, never a hang) with a CNI error object on stdout whose code is
the expected one and whose message names the culprit, and that nothing changed: links,
addresses, routes and sysctls of the host and the container namespace, the nftables ruleset, and
every file of the state directories are what they were before the run.

usage: bad-input.py BIN_DIR STATE_DIR CONTAINER_NETNS ID
"""
import hashlib
import json
import os
import subprocess
import sys

BIN, D, NETNS, ID = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
CPATH = D + "/bin"
BRIDGE = "swbad" + ID           # a bridge name no case may leave behind
VETH = "swbadv" + ID            # an existing non-bridge link (a veth) in the host namespace
MASTER = "swbadm" + ID          # its peer: the macvlan master
passed = failed = 0


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout


def scrub(v):
    """Drops what the kernel changes by itself (bridge timers, counters) from `ip -j` output."""
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if not k.endswith("_timer") and k not in ("stats64", "stats")}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


def snapshot():
    s = {}
    for name, cmd in {
        "host links": ["ip", "-d", "-j", "link"],
        "host addresses": ["ip", "-j", "addr"],
        "host routes": ["ip", "-j", "route", "show", "table", "all"],
        "host routes6": ["ip", "-6", "-j", "route", "show", "table", "all"],
        "container links": ["ip", "-n", NETNS, "-d", "-j", "link"],
        "container addresses": ["ip", "-n", NETNS, "-j", "addr"],
        "container routes": ["ip", "-n", NETNS, "-j", "route", "show", "table", "all"],
    }.items():
        s[name] = scrub(json.loads(sh(*cmd) or "[]"))
    s["nftables"] = sh("nft", "list", "ruleset")
    for k in ("ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv4/conf/all/route_localnet"):
        with open("/proc/sys/net/" + k) as f:
            s["sysctl " + k] = f.read()
    files = {}
    for root, dirs, names in os.walk(D):
        if root.startswith(CPATH):
            continue
        for n in names + dirs:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    files[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                files[p] = "dir"
    s["files"] = files
    return s


def diff(a, b):
    out = []
    for k in a:
        if a[k] != b.get(k):
            if k == "files":
                added = sorted(set(b[k]) - set(a[k]))
                removed = sorted(set(a[k]) - set(b[k]))
                changed = sorted(p for p in a[k] if p in b[k] and a[k][p] != b[k][p])
                out.append(f"files: added {added} removed {removed} changed {changed}")
            else:
                out.append(k)
    return out


def run(plugin, command="ADD", conf=None, env=None, unset=(), cid=None):
    e = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "bad-" + ID if cid is None else cid,
         "CNI_NETNS": "/run/netns/" + NETNS, "CNI_IFNAME": "eth0", "CNI_PATH": CPATH}
    e.update(env or {})
    for k in unset:
        e.pop(k, None)
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode() if conf is not None else b""
    try:
        p = subprocess.run([CPATH + "/" + plugin], input=data, env=e, capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after 20 s"
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def merge(base, extra):
    out = json.loads(json.dumps(base))
    for k, v in (extra or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def ipam(**extra):
    return merge({"type": "host-local", "ranges": [[{"subnet": "10.91.0.0/24"}]], "dataDir": D + "/ipam"}, extra)


def bridge(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "bridge", "bridge": BRIDGE, "isGateway": True,
                  "ipam": ipam()}, extra)


def hostlocal(**extra):
    return {"cniVersion": "1.1.0", "name": "badnet", "type": "bridge", "ipam": ipam(**extra)}


def macvlan(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "macvlan", "master": MASTER, "ipam": ipam()}, extra)


PREV = {"cniVersion": "1.1.0",
        "interfaces": [{"name": BRIDGE}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/run/netns/" + NETNS}],
        "ips": [{"address": "10.91.0.5/24", "gateway": "10.91.0.1", "interface": 2}]}


def portmap(mappings=None, prev=PREV, **extra):
    c = {"cniVersion": "1.1.0", "name": "badnet", "type": "portmap", "capabilities": {"portMappings": True},
         "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}] if mappings is None else mappings}}
    if prev is not None:
        c["prevResult"] = prev
    return merge(c, extra)


def dnsname(prev=PREV, **extra):
    c = {"cniVersion": "1.1.0", "name": "badnet", "type": "dnsname", "runDir": D + "/dns"}
    if prev is not None:
        c["prevResult"] = prev
    return merge(c, extra)


def bandwidth(limits=None, prev=PREV, **extra):
    c = {"cniVersion": "1.1.0", "name": "badnet", "type": "bandwidth", "capabilities": {"bandwidth": True},
         "runtimeConfig": {"bandwidth": limits if limits is not None else {"ingressRate": 8000, "ingressBurst": 16000}}}
    if prev is not None:
        c["prevResult"] = prev
    return merge(c, extra)


def tap(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "tap"}, extra)


def vrf(prev=PREV, **extra):
    c = {"cniVersion": "1.1.0", "name": "badnet", "type": "vrf", "vrfname": "blue"}
    if prev is not None:
        c["prevResult"] = prev
    return merge(c, extra)


def sbr(prev=PREV, **extra):
    c = {"cniVersion": "1.1.0", "name": "badnet", "type": "sbr"}
    if prev is not None:
        c["prevResult"] = prev
    return merge(c, extra)


def flannel(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "flannel", "subnetFile": D + "/no-subnet.env",
                  "dataDir": D + "/flannel", "delegate": {"bridge": BRIDGE}}, extra)


def static(addresses=None, **extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "bridge", "bridge": BRIDGE,
                  "ipam": {"type": "static", "addresses": addresses if addresses is not None else [{"address": "10.91.5.5/24"}]}}, extra)


def sub(kind, **extra):  # ipvlan, vlan: a sub-interface of MASTER
    c = {"cniVersion": "1.1.0", "name": "badnet", "type": kind, "master": MASTER, "ipam": ipam()}
    if kind == "vlan":
        c["vlanId"] = 100
    return merge(c, extra)


def dummy(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "dummy", "ipam": ipam()}, extra)


def hostdev(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "host-device", "ipam": ipam()}, extra)


def ptp(**extra):
    return merge({"cniVersion": "1.1.0", "name": "badnet", "type": "ptp", "ipam": ipam()}, extra)


def with_version(conf, v):
    return merge(conf, {"cniVersion": v})


# (what, plugin, kwargs for run, expected code, text the message must contain)
CASES = [
    # The environment (the same dispatcher serves every plugin).
    ("CNI_COMMAND missing", "bridge", dict(conf=bridge(), unset=["CNI_COMMAND"]), 4, "CNI_COMMAND"),
    ("CNI_COMMAND unknown", "bridge", dict(conf=bridge(), env={"CNI_COMMAND": "ATTACH"}), 4, "ATTACH"),
    ("CNI_CONTAINERID missing", "bridge", dict(conf=bridge(), unset=["CNI_CONTAINERID"]), 4, "CNI_CONTAINERID"),
    ("CNI_CONTAINERID with a path", "bridge", dict(conf=bridge(), cid="../../etc/passwd"), 4, "CNI_CONTAINERID"),
    ("CNI_CONTAINERID with a space", "host-local", dict(conf=hostlocal(), cid="a b"), 4, "CNI_CONTAINERID"),
    ("CNI_CONTAINERID empty on DEL", "portmap", dict(command="DEL", conf=portmap(), cid=""), 4, "CNI_CONTAINERID"),
    ("CNI_NETNS missing", "bridge", dict(conf=bridge(), unset=["CNI_NETNS"]), 4, "CNI_NETNS"),
    ("CNI_IFNAME missing", "bridge", dict(conf=bridge(), unset=["CNI_IFNAME"]), 4, "CNI_IFNAME"),
    ("CNI_IFNAME of 16 characters", "bridge", dict(conf=bridge(), env={"CNI_IFNAME": "eth0123456789abc"}), 4, "CNI_IFNAME"),
    ("CNI_IFNAME with a slash", "macvlan", dict(conf=macvlan(), env={"CNI_IFNAME": "eth/0"}), 4, "CNI_IFNAME"),
    ("CNI_IFNAME \".\"", "bridge", dict(conf=bridge(), env={"CNI_IFNAME": "."}), 4, "CNI_IFNAME"),
    ("CNI_IFNAME with a space", "host-local", dict(conf=hostlocal(), env={"CNI_IFNAME": "eth 0"}), 4, "CNI_IFNAME"),
    ("CNI_PATH missing", "bridge", dict(conf=bridge(), unset=["CNI_PATH"]), 4, "CNI_PATH"),
    ("CNI_ARGS without =", "bridge", dict(conf=bridge(), env={"CNI_ARGS": "IgnoreUnknown"}), 4, "CNI_ARGS"),
    ("CNI_ARGS with an unknown key", "host-local", dict(conf=hostlocal(), env={"CNI_ARGS": "FOO=bar"}), 4, "FOO"),
    ("CNI_NETNS a regular file", "bridge", dict(conf=bridge(), env={"CNI_NETNS": D + "/not-a-netns"}), 4, "CNI_NETNS"),
    ("CNI_NETNS the host's own", "bridge", dict(conf=bridge(), env={"CNI_NETNS": "/proc/self/ns/net"}), 4, "own network namespace"),
    ("CNI_NETNS a mount namespace", "macvlan", dict(conf=macvlan(), env={"CNI_NETNS": "/proc/self/ns/mnt"}), 4, "CNI_NETNS"),
    ("CNI_NETNS a directory", "bridge", dict(conf=bridge(), env={"CNI_NETNS": D}), 4, "CNI_NETNS"),
    ("CNI_NETNS that does not exist", "bridge", dict(conf=bridge(), env={"CNI_NETNS": "/run/netns/nonexistent-" + ID}), 3, "does not exist"),
    # stdin.
    ("empty stdin", "bridge", dict(conf=b""), 6, "configuration"),
    ("stdin not JSON", "bridge", dict(conf=b"bridge please"), 6, "at byte 0"),
    ("stdin a JSON array", "host-local", dict(conf=b"[]"), 6, "object"),
    ("stdin truncated", "portmap", dict(conf=b'{"cniVersion":"1.1.0","name":'), 6, "end of input"),
    ("stdin with invalid UTF-8", "bridge", dict(conf=b'{"cniVersion":"1.1.0","name":"a\xff\xfe","type":"bridge"}'), 6, "UTF-8"),
    ("stdin nested 100000 deep", "bridge", dict(conf=b"[" * 100000), 6, "nesting"),
    ("stdin of 5 MiB", "bridge", dict(conf=b'{"cniVersion":"1.1.0","name":"' + b"a" * (5 << 20) + b'"}'), 6, "limit"),
    ("stdin with a NUL byte", "dnsname", dict(conf=b'{"cniVersion":"1.1.0",\x00"name":"x"}'), 6, "at byte 22"),
    ("cniVersion 9.9.9", "bridge", dict(conf=with_version(bridge(), "9.9.9")), 1, "9.9.9"),
    ("cniVersion a number", "host-local", dict(conf=with_version(hostlocal(), 1.1)), 6, "cniVersion"),
    ("cniVersion malformed", "macvlan", dict(conf=with_version(macvlan(), "1.1")), 1, "1.1"),
    ("name missing", "bridge", dict(conf=bridge(name=None)), 7, "name"),
    ("name with a slash", "bridge", dict(conf=bridge(name="a/b")), 7, "name"),
    ("name \"..\"", "host-local", dict(conf=merge(hostlocal(), {"name": ".."})), 7, "name"),
    ("name a number", "portmap", dict(conf=portmap(name=5)), 6, "name"),
    ("CHECK with cniVersion 0.3.1", "bridge", dict(command="CHECK", conf=with_version(bridge(), "0.3.1")), 1, "CHECK"),
    ("GC with cniVersion 1.0.0", "host-local", dict(command="GC", conf=with_version(hostlocal(), "1.0.0")), 1, "GC"),
    ("STATUS with cniVersion 0.4.0", "portmap", dict(command="STATUS", conf=with_version(portmap(), "0.4.0")), 1, "STATUS"),
    ("DEL with stdin not JSON", "bridge", dict(command="DEL", conf=b"{"), 6, "decode network configuration"),
    ("DEL with cniVersion 2.0.0", "macvlan", dict(command="DEL", conf=with_version(macvlan(), "2.0.0")), 1, "2.0.0"),
    ("prevResult not an object", "portmap", dict(conf=portmap(prev="10.0.0.2")), 6, "prevResult"),
    ("prevResult with a bad address", "portmap",
     dict(conf=portmap(prev=merge(PREV, {"ips": [{"address": "10.91.0.300/24", "interface": 2}]}))), 7, "10.91.0.300"),
    # bridge.
    ("bridge name of 16 characters", "bridge", dict(conf=bridge(bridge="b123456789abcdef")), 7, "bridge"),
    ("bridge name with a slash", "bridge", dict(conf=bridge(bridge="br/0")), 7, "bridge"),
    ("bridge name a number", "bridge", dict(conf=bridge(bridge=0)), 6, "bridge"),
    ("bridge name a veth", "bridge", dict(conf=bridge(bridge=VETH)), 107, VETH),
    ("bridge mtu negative", "bridge", dict(conf=bridge(mtu=-5)), 7, "mtu"),
    ("bridge mtu a string", "bridge", dict(conf=bridge(mtu="1500")), 6, "mtu"),
    ("bridge isGateway a string", "bridge", dict(conf=bridge(isGateway="yes")), 6, "isGateway"),
    ("bridge routeMetric negative", "bridge", dict(conf=bridge(routeMetric=-1)), 7, "routeMetric"),
    ("bridge routeMetric a string", "bridge", dict(conf=bridge(routeMetric="100")), 6, "routeMetric"),
    ("bridge hairpinMode with promiscMode", "bridge", dict(conf=bridge(hairpinMode=True, promiscMode=True)), 7, "hairpinMode"),
    ("bridge vlan 5000", "bridge", dict(conf=bridge(vlan=5000)), 7, "vlan"),
    ("bridge vlanTrunk id 0", "bridge", dict(conf=bridge(vlanTrunk=[{"id": 0}])), 7, "vlanTrunk"),
    ("bridge vlanTrunk min above max", "bridge", dict(conf=bridge(vlanTrunk=[{"minID": 20, "maxID": 10}])), 7, "vlanTrunk"),
    ("bridge disableContainerInterface with IPAM", "bridge", dict(conf=bridge(disableContainerInterface=True)), 7, "disableContainerInterface"),
    ("bridge IPAM plugin not on CNI_PATH", "bridge", dict(conf=bridge(ipam={"type": "nosuch-ipam"})), 102, "nosuch-ipam"),
    ("bridge IPAM type missing", "bridge", dict(conf=bridge(ipam={"subnet": "10.91.0.0/24"})), 7, "ipam.type"),
    ("bridge whose IPAM range is exhausted (the bridge it made goes too)", "bridge",
     dict(conf=merge(bridge(ipam=ipam(ranges=[[{"subnet": "10.91.9.0/30"}]])), {"name": "tiny"})), 106, "10.91.9.1-10.91.9.2"),
    ("bridge CNI_IFNAME in use in the container", "bridge", dict(conf=bridge(), env={"CNI_IFNAME": "inuse0"}), 107, "inuse0"),
    ("bridge IPAM that exits without reading its 1 MB stdin (no SIGPIPE death)", "bridge",
     dict(conf=bridge(ipam={"type": "deaf-ipam"}, padding="x" * (1 << 20))), 102, "deaf-ipam"),
    ("bridge mac invalid", "bridge", dict(conf=bridge(runtimeConfig={"mac": "02:00:zz:00:00:01"})), 7, "02:00:zz:00:00:01"),
    # host-local.
    ("host-local subnet /33", "host-local", dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.0/33"}]])), 7, "10.91.0.0/33"),
    ("host-local subnet not a CIDR", "host-local", dict(conf=hostlocal(ranges=[[{"subnet": "banana"}]])), 7, "banana"),
    ("host-local subnet /32", "host-local", dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.7/32"}]])), 7, "10.91.0.7/32"),
    ("host-local rangeStart outside the subnet", "host-local",
     dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.0/24", "rangeStart": "10.92.0.10"}]])), 7, "rangeStart"),
    ("host-local rangeEnd before rangeStart", "host-local",
     dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.0/24", "rangeStart": "10.91.0.50", "rangeEnd": "10.91.0.10"}]])), 7, "rangeEnd"),
    ("host-local overlapping ranges in a set", "host-local",
     dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.0/24"}, {"subnet": "10.91.0.128/25"}]])), 7, "overlap"),
    ("host-local overlapping range sets", "host-local",
     dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.0/24"}], [{"subnet": "10.91.0.0/25"}]])), 7, "overlap"),
    ("host-local gateway a string of junk", "host-local",
     dict(conf=hostlocal(ranges=[[{"subnet": "10.91.0.0/24", "gateway": "gw"}]])), 7, "gateway"),
    ("host-local no ranges", "host-local", dict(conf=hostlocal(ranges=[])), 7, "ranges"),
    ("host-local ranges a string", "host-local", dict(conf=hostlocal(ranges="10.91.0.0/24")), 6, "ranges"),
    ("host-local dataDir relative", "host-local", dict(conf=hostlocal(dataDir="var/lib/cni")), 7, "ipam.dataDir"),
    ("host-local route dst junk", "host-local", dict(conf=hostlocal(routes=[{"dst": "everywhere"}])), 7, "everywhere"),
    ("host-local route priority negative", "host-local", dict(conf=hostlocal(routes=[{"dst": "0.0.0.0/0", "priority": -1}])), 7, "priority"),
    ("host-local CNI_ARGS IP junk", "host-local", dict(conf=hostlocal(), env={"CNI_ARGS": "IP=10.91.0.300"}), 7, "10.91.0.300"),
    ("host-local requested IP outside every range", "host-local",
     dict(conf=hostlocal(), env={"CNI_ARGS": "IP=192.168.77.7"}), 106, "192.168.77.7"),
    ("host-local resolvConf missing", "host-local", dict(conf=hostlocal(resolvConf=D + "/no-resolv.conf")), 7, "resolvConf"),
    ("host-local range exhausted", "host-local", dict(conf=merge(hostlocal(ranges=[[{"subnet": "10.91.9.0/30"}]]), {"name": "tiny"})),
     106, "10.91.9.1-10.91.9.2"),
    # macvlan.
    ("macvlan master missing", "macvlan", dict(conf=macvlan(master="nosuchdev0")), 7, "nosuchdev0"),
    ("macvlan master name of 16 characters", "macvlan", dict(conf=macvlan(master="m123456789abcdef")), 7, "master"),
    ("macvlan mode unknown", "macvlan", dict(conf=macvlan(mode="bridgy")), 7, "bridgy"),
    ("macvlan mtu above the master's", "macvlan", dict(conf=macvlan(mtu=9000)), 7, "mtu"),
    ("macvlan no master, no default route", "macvlan", dict(conf=macvlan(master=None)), 7, "master"),
    ("macvlan CNI_IFNAME in use in the container", "macvlan", dict(conf=macvlan(), env={"CNI_IFNAME": "inuse0"}), 107, "inuse0"),
    ("macvlan master a number", "macvlan", dict(conf=macvlan(master=3)), 6, "master"),
    ("macvlan routeMetric above 2^32-1", "macvlan", dict(conf=macvlan(routeMetric=1 << 32)), 7, "routeMetric"),
    ("macvlan master the loopback", "macvlan", dict(conf=macvlan(master="lo")), 7, "loopback"),
    ("a conflist on bridge's stdin", "bridge", dict(conf={"cniVersion": "1.1.0", "name": "badnet", "plugins": [bridge()]}), 7, "plugins"),
    ("a conflist on host-local's stdin", "host-local",
     dict(conf={"cniVersion": "1.1.0", "name": "badnet", "plugins": [hostlocal()]}), 7, "plugins"),
    # portmap.
    ("portmap hostPort 0", "portmap", dict(conf=portmap([{"hostPort": 0, "containerPort": 80}])), 7, "hostPort"),
    ("portmap containerPort 70000", "portmap", dict(conf=portmap([{"hostPort": 8080, "containerPort": 70000}])), 7, "containerPort"),
    ("portmap protocol icmp", "portmap", dict(conf=portmap([{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}])), 7, "icmp"),
    ("portmap hostIP junk", "portmap", dict(conf=portmap([{"hostPort": 8080, "containerPort": 80, "hostIP": "1.2.3"}])), 7, "1.2.3"),
    ("portmap mappings not an array", "portmap", dict(conf=portmap({"hostPort": 8080})), 6, "portMappings"),
    ("portmap conditionsV4", "portmap", dict(conf=portmap(conditionsV4=["-s", "1.2.3.4"])), 2, "conditionsV4"),
    ("portmap without prevResult", "portmap", dict(conf=portmap(prev=None)), 7, "prevResult"),
    ("portmap same host port twice", "portmap",
     dict(conf=portmap([{"hostPort": 8080, "containerPort": 80}, {"hostPort": 8080, "containerPort": 81}])), 7, "8080/tcp"),
    ("portmap host port taken", "portmap", dict(conf=portmap([{"hostPort": 9090, "containerPort": 80}])), 107, "9090/tcp"),
    # vxlan (file store).
    ("vxlan network missing", "vxlan", dict(conf={"cniVersion": "1.1.0", "name": "ov", "type": "vxlan"}), 7, "network"),
    ("vxlan subnetLen shorter than the network", "vxlan",
     dict(conf={"cniVersion": "1.1.0", "name": "ov", "type": "vxlan", "network": "10.248.0.0/16", "subnetLen": 8}), 7, "subnetLen"),
    ("vxlan store etcd before the agent wrote the node file", "vxlan",
     dict(conf={"cniVersion": "1.1.0", "name": "ov", "type": "vxlan", "network": "10.248.0.0/16",
                "store": {"type": "etcd", "nodeFile": "/nonexistent-swift-cni/vxlan.1.json"}}), 11, "/nonexistent-swift-cni/vxlan.1.json"),
    ("vxlan store etcd with a relative node file", "vxlan",
     dict(conf={"cniVersion": "1.1.0", "name": "ov", "type": "vxlan", "network": "10.248.0.0/16",
                "store": {"type": "etcd", "nodeFile": "run/vxlan.1.json"}}), 7, "store.nodeFile"),
    ("vxlan underlay that does not exist", "vxlan",
     dict(conf={"cniVersion": "1.1.0", "name": "ov", "type": "vxlan", "network": "10.248.0.0/16", "underlay": "nosuchdev1",
                "store": {"type": "file", "path": D + "/ov.leases"}}), 7, "nosuchdev1"),
    # dnsname.
    ("dnsname without prevResult", "dnsname", dict(conf=dnsname(prev=None)), 7, "prevResult"),
    ("dnsname domainName with an empty label", "dnsname", dict(conf=dnsname(domainName="a..b")), 7, "a..b"),
    ("dnsname runDir relative", "dnsname", dict(conf=dnsname(runDir="run/dns")), 7, "runDir"),
    ("dnsname prevResult without a gateway", "dnsname",
     dict(conf=dnsname(prev=merge(PREV, {"ips": [{"address": "10.91.0.5/24", "interface": 2}]}))), 7, "gateway"),
    ("dnsname aliases not an object", "dnsname", dict(conf=dnsname(runtimeConfig={"aliases": ["a"]})), 6, "aliases"),
    ("dnsname pod name not a DNS label", "dnsname",
     dict(conf=dnsname(), env={"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=bad_name!"}), 7, "bad_name!"),
    # bandwidth: each limit needs its rate and its burst, within the kernel's fields; no prevResult.
    ("bandwidth ingressRate without ingressBurst", "bandwidth", dict(conf=bandwidth({"ingressRate": 8000})), 7,
     "runtimeConfig.bandwidth.ingressBurst"),
    ("bandwidth egressBurst without egressRate", "bandwidth", dict(conf=bandwidth({"egressBurst": 8000})), 7,
     "runtimeConfig.bandwidth.egressRate"),
    ("bandwidth egressBurst over 4 GB", "bandwidth", dict(conf=bandwidth({"egressRate": 8000, "egressBurst": 40000000000})), 7,
     "egressBurst"),
    ("bandwidth ingressRate whose 25 ms queue overflows the limit", "bandwidth",
     dict(conf=bandwidth({"ingressRate": 9000000000000000000, "ingressBurst": 8000})), 7, "ingressRate"),
    ("bandwidth ingressRate below one byte per second", "bandwidth", dict(conf=bandwidth({"ingressRate": 4, "ingressBurst": 8000})), 7,
     "ingressRate"),
    ("bandwidth ingressRate a string", "bandwidth", dict(conf=bandwidth({"ingressRate": "8mbit", "ingressBurst": 8000})), 6,
     "ingressRate"),
    ("bandwidth ingressRate negative (top-level keys)", "bandwidth",
     dict(conf=bandwidth(runtimeConfig=None, ingressRate=-1, ingressBurst=8000)), 7, "ingressRate"),
    ("bandwidth without prevResult", "bandwidth", dict(conf=bandwidth(prev=None)), 7, "chained plugin"),
    ("bandwidth on an interface that is not there", "bandwidth", dict(conf=bandwidth(), env={"CNI_IFNAME": "nosuch0"}), 7, "nosuch0"),
    # flannel: the delegate's name and ipam are flannel's to set; the subnet file must be there.
    ("flannel delegate with a name", "flannel", dict(conf=flannel(delegate={"name": "x"})), 7, "delegate.name"),
    ("flannel delegate with an ipam", "flannel", dict(conf=flannel(delegate={"ipam": {"type": "host-local"}})), 7, "delegate.ipam"),
    ("flannel delegate type a number", "flannel", dict(conf=flannel(delegate={"type": 5})), 7, "delegate.type"),
    ("flannel dataDir relative", "flannel", dict(conf=flannel(dataDir="flannel")), 7, "dataDir"),
    ("flannel without its subnet file (try again later)", "flannel", dict(conf=flannel()), 11, "no-subnet.env"),
    # ipvlan, vlan, dummy, host-device: refused before any link is made or IPAM runs.
    ("ipvlan mode unknown", "ipvlan", dict(conf=sub("ipvlan", mode="l4")), 7, "mode"),
    ("ipvlan flag unknown", "ipvlan", dict(conf=sub("ipvlan", flag="open")), 7, "flag"),
    ("ipvlan master missing", "ipvlan", dict(conf=sub("ipvlan", master="nosuchdev0")), 7, "nosuchdev0"),
    ("ipvlan mtu above the master's", "ipvlan", dict(conf=sub("ipvlan", mtu=9000)), 7, "mtu"),
    ("ipvlan without ipam or prevResult addresses", "ipvlan", dict(conf=sub("ipvlan", ipam={})), 7, "ipam"),
    ("ipvlan on the loopback", "ipvlan", dict(conf=sub("ipvlan", master="lo")), 7, "loopback"),
    ("vlan vlanId out of range", "vlan", dict(conf=sub("vlan", vlanId=4095)), 7, "vlanId"),
    ("vlan vlanId a string", "vlan", dict(conf=sub("vlan", vlanId="100")), 6, "vlanId"),
    ("vlan without vlanId", "vlan", dict(conf=merge(sub("vlan"), {"vlanId": None})), 7, "vlanId"),
    ("vlan without master", "vlan", dict(conf=merge(sub("vlan"), {"master": None})), 7, "master"),
    ("vlan master missing", "vlan", dict(conf=sub("vlan", master="nosuchdev0")), 7, "nosuchdev0"),
    ("dummy without ipam", "dummy", dict(conf=dummy(ipam={})), 7, "ipam"),
    ("dummy mac malformed", "dummy", dict(conf=dummy(mac="02:00:00")), 7, "mac"),
    ("dummy mtu below 68", "dummy", dict(conf=dummy(mtu=20)), 7, "mtu"),
    ("host-device without a device", "host-device", dict(conf=hostdev()), 7, "device"),
    ("host-device device not there", "host-device", dict(conf=hostdev(device="nosuchdev9")), 7, "nosuchdev9"),
    ("host-device hwaddr malformed", "host-device", dict(conf=hostdev(hwaddr="zz:00")), 7, "hwaddr"),
    ("host-device kernelpath outside /sys/devices", "host-device", dict(conf=hostdev(kernelpath="/etc/../sys/devices/x")), 7, "kernelpath"),
    ("host-device pciBusID with a slash", "host-device", dict(conf=hostdev(pciBusID="../../etc")), 7, "pciBusID"),
    ("host-device the loopback", "host-device", dict(conf=hostdev(device="lo")), 7, "loopback"),
    ("host-device deviceID on no bus", "host-device", dict(conf=hostdev(device=MASTER, runtimeConfig={"deviceID": "0000:ff:1f.7"})), 7,
     "deviceID"),
    # tap: refused before the device is made.
    ("tap owner negative", "tap", dict(conf=tap(owner=-1)), 7, "owner"),
    ("tap owner (uid_t)-1", "tap", dict(conf=tap(owner=4294967295)), 7, "owner"),
    ("tap group a string", "tap", dict(conf=tap(group="kvm")), 6, "group"),
    ("tap multiQueue a string", "tap", dict(conf=tap(multiQueue="yes")), 6, "multiQueue"),
    ("tap mac malformed", "tap", dict(conf=tap(mac="02:00")), 7, "mac"),
    ("tap mtu above 65535", "tap", dict(conf=tap(mtu=70000)), 7, "mtu"),
    ("tap bridge not in the container", "tap", dict(conf=tap(bridge="nosuchbr0")), 7, "nosuchbr0"),
    ("tap bridge name too long", "tap", dict(conf=tap(bridge="a-very-long-bridge-name")), 7, "bridge"),
    ("tap selinuxContext with a space", "tap", dict(conf=tap(selinuxContext="system_u:system_r:x t:s0")), 7, "selinuxContext"),
    ("tap CNI_IFNAME taken", "tap", dict(conf=tap(), env={"CNI_IFNAME": "inuse0"}), 107, "inuse0"),
    # vrf: refused before a VRF is made or an interface moved.
    ("vrf without vrfname", "vrf", dict(conf=vrf(vrfname=None)), 7, "vrfname"),
    ("vrf vrfname too long", "vrf", dict(conf=vrf(vrfname="a-very-long-vrf-name")), 7, "vrfname"),
    ("vrf table the main table", "vrf", dict(conf=vrf(table=254)), 7, "table"),
    ("vrf table a string", "vrf", dict(conf=vrf(table="100")), 6, "table"),
    ("vrf on an interface that is not there", "vrf", dict(conf=vrf(), env={"CNI_IFNAME": "nosuch0"}), 7, 'no interface "nosuch0"'),
    ("vrf without prevResult", "vrf", dict(conf=vrf(prev=None)), 7, "chained plugin"),
    ("vrf cniVersion 0.3.0 (prevResult from 0.3.1)", "vrf", dict(conf=vrf(cniVersion="0.3.0", prev=None)), 1, "0.3.0"),
    # sbr: refused before a rule or route is made.
    ("sbr without prevResult", "sbr", dict(conf=sbr(prev=None)), 7, "chained plugin"),
    ("sbr prevResult without an address on CNI_IFNAME", "sbr", dict(conf=sbr(), env={"CNI_IFNAME": "net7"}), 7, "net7"),
    ("sbr table 0", "sbr", dict(conf=sbr(table=0)), 7, "table"),
    ("sbr table a string", "sbr", dict(conf=sbr(table="100")), 6, "table"),
    ("sbr gateway not an address", "sbr", dict(conf=sbr(gateways=["router"])), 7, "gateways[0]"),
    ("sbr two IPv6 gateways", "sbr", dict(conf=sbr(gateways=["fd00::1", "fd00::2"])), 7, "gateways[1]"),
    ("sbr three gateways", "sbr", dict(conf=sbr(gateways=["10.91.0.1", "fd00::1", "10.91.0.2"])), 7, "gateways"),
    ("sbr gateways with table", "sbr", dict(conf=sbr(table=300, gateways=["10.91.0.1"])), 7, "gateways"),
    ("sbr on an interface that is not there", "sbr",
     dict(conf=sbr(prev=merge(PREV, {"interfaces": [{"name": "nosuch0", "sandbox": "/run/netns/" + NETNS}],
                                     "ips": [{"address": "10.91.0.5/24", "interface": 0}]})), env={"CNI_IFNAME": "nosuch0"}), 7,
     'no interface "nosuch0"'),
    # static IPAM (run as IPAM directly): addresses in CIDR notation, gateways that are addresses.
    ("static address without a prefix length", "static", dict(conf=static([{"address": "10.91.5.5"}])), 7, "ipam.addresses[0].address"),
    ("static gateway not an address", "static", dict(conf=static([{"address": "10.91.5.5/24", "gateway": "router"}])), 7,
     "ipam.addresses[0].gateway"),
    ("static CNI_ARGS IP not CIDR", "static", dict(conf=static(), env={"CNI_ARGS": "IP=10.91.5.6"}), 7, "CNI_ARGS IP"),
    ("static runtimeConfig.ips not CIDR", "static", dict(conf=static(runtimeConfig={"ips": ["nope"]})), 7, "runtimeConfig.ips"),
    ("static gateway outside the address's subnet", "static",
     dict(conf=static([{"address": "10.91.5.5/24", "gateway": "10.91.6.1"}])), 7, "10.91.6.1"),
    ("static address given twice", "static", dict(conf=static([{"address": "10.91.5.5/24"}, {"address": "10.91.5.5/16"}])), 7,
     "10.91.5.5"),
    ("static two IPv4 addresses in 0.2.0", "static",
     dict(conf=static([{"address": "10.91.5.5/24"}, {"address": "10.91.6.5/24"}], cniVersion="0.2.0")), 7, "one address per family"),
    ("bridge with static IPAM whose address is not CIDR (nothing made)", "bridge", dict(conf=static([{"address": "10.91.5.5"}])), 7,
     "ipam.addresses[0].address"),
    # ptp: it needs IPAM (addresses and gateways); its keys are checked before anything is made.
    ("ptp without ipam", "ptp", dict(conf=ptp(ipam=None)), 7, "ipam"),
    ("ptp mtu below 68", "ptp", dict(conf=ptp(mtu=40)), 7, "mtu"),
    ("ptp ipMasqBackend unknown", "ptp", dict(conf=ptp(ipMasqBackend="pf")), 7, "ipMasqBackend"),
    ("ptp ipMasq a string", "ptp", dict(conf=ptp(ipMasq="yes")), 6, "ipMasq"),
    ("ptp whose IPAM range is exhausted (the veth it made goes too)", "ptp",
     dict(conf=merge(ptp(ipam=ipam(ranges=[[{"subnet": "10.91.9.0/30"}]])), {"name": "tiny"})), 106, "10.91.9.1-10.91.9.2"),
]


def setup():
    """State some cases need: a full /30 range, a host port mapped by another container."""
    rc, out, err = run("host-local", conf=merge(hostlocal(ranges=[[{"subnet": "10.91.9.0/30"}]]), {"name": "tiny"}), cid="filler")
    assert rc == 0, f"setup: filling the /30: {out} {err}"
    rc, out, err = run("portmap", conf=portmap([{"hostPort": 9090, "containerPort": 80}]), cid="holder")
    assert rc == 0, f"setup: mapping 9090: {out} {err}"
    open(D + "/not-a-netns", "w").close()
    os.symlink("/bin/false", CPATH + "/deaf-ipam")
    sh("ip", "-n", NETNS, "link", "add", "inuse0", "type", "veth", "peer", "name", "inuse1")


def teardown():
    run("host-local", "DEL", conf=merge(hostlocal(ranges=[[{"subnet": "10.91.9.0/30"}]]), {"name": "tiny"}), cid="filler")
    run("portmap", "DEL", conf=portmap([{"hostPort": 9090, "containerPort": 80}]), cid="holder")


def main():
    global passed, failed
    setup()
    for what, plugin, kw, code, named in CASES:
        before = snapshot()
        rc, out, err = run(plugin, **kw)
        after = snapshot()
        problems = []
        if rc is None:
            problems.append(err)
        elif rc < 0:
            problems.append(f"killed by signal {-rc}")
        elif rc != 1:
            problems.append(f"exit status {rc}")
        try:
            e = json.loads(out)
            got, msg = e.get("code"), (e.get("msg") or "") + " | " + (e.get("details") or "")
        except ValueError:
            got, msg = None, out[:200]
        if got != code:
            problems.append(f"code {got}, want {code}")
        if named not in msg:
            problems.append(f"message does not name {named!r}")
        problems += ["changed: " + d for d in diff(before, after)]
        label = f"{plugin} {kw.get('command', 'ADD')}: {what} -> {code}"
        if problems:
            failed += 1
            print(f"  FAIL {label}: {'; '.join(problems)} [{msg[:240]}] {err[:200]}")
        else:
            passed += 1
            print(f"  ok   {label}  [{msg[:110]}]")
    teardown()
    print(f"{len(CASES)} cases")


main()
print(f"bad-input: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
