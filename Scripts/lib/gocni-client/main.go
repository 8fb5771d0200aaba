// gocni-client drives CNI plugins through go-cni exactly as containerd's CRI does for every pod:
// the loopback network, then the first network of the configuration directory, with the pod's
// labels as CNI_ARGS, port mappings and bandwidth limits as capabilities (the CRI's from the
// pod's hostPorts and its kubernetes.io/ingress-bandwidth and egress-bandwidth annotations).
// For Scripts/e2e/go-cni.sh and k8s-node.sh.
//
//	gocni-client setup|check|remove CONF_DIR BIN_DIR ID NETNS POD_NAME [HOSTPORT:CONTAINERPORT [RATE:BURST]]
//
// RATE (bits per second) and BURST (bits) limit both directions.
//
// setup prints the result: one line per interface, "<name> <address>...".
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	gocni "github.com/containerd/go-cni"
)

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: gocni-client setup|check|remove CONF_DIR BIN_DIR ID NETNS POD_NAME [HOSTPORT:CONTAINERPORT]")
		os.Exit(2)
	}
	cmd, confDir, binDir, id, netns, pod := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	// As the CRI plugin: loopback + one network, "eth" interfaces.
	l, err := gocni.New(gocni.WithMinNetworkCount(2), gocni.WithPluginConfDir(confDir),
		gocni.WithPluginDir([]string{binDir}), gocni.WithInterfacePrefix("eth"))
	if err != nil {
		fail(err)
	}
	if err := l.Load(gocni.WithLoNetwork, gocni.WithDefaultConf); err != nil {
		fail(err)
	}
	if err := l.Status(); err != nil {
		fail(err)
	}
	opts := []gocni.NamespaceOpts{gocni.WithLabels(map[string]string{
		"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": pod, "K8S_POD_INFRA_CONTAINER_ID": id,
	})}
	if len(os.Args) > 7 {
		hc := strings.SplitN(os.Args[7], ":", 2)
		h, _ := strconv.Atoi(hc[0])
		c, _ := strconv.Atoi(hc[1])
		opts = append(opts, gocni.WithCapabilityPortMap([]gocni.PortMapping{{HostPort: int32(h), ContainerPort: int32(c), Protocol: "tcp"}}))
	}
	if len(os.Args) > 8 {
		rb := strings.SplitN(os.Args[8], ":", 2)
		rate, _ := strconv.ParseUint(rb[0], 10, 64)
		burst, _ := strconv.ParseUint(rb[1], 10, 64)
		opts = append(opts, gocni.WithCapabilityBandWidth(gocni.BandWidth{
			IngressRate: rate, IngressBurst: burst, EgressRate: rate, EgressBurst: burst,
		}))
	}
	ctx := context.Background()
	switch cmd {
	case "setup":
		r, err := l.Setup(ctx, id, netns, opts...)
		if err != nil {
			fail(err)
		}
		names := make([]string, 0, len(r.Interfaces))
		for n := range r.Interfaces {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			line := n
			for _, ip := range r.Interfaces[n].IPConfigs {
				line += " " + ip.IP.String()
			}
			fmt.Println(line)
		}
	case "check":
		if err := l.Check(ctx, id, netns, opts...); err != nil {
			fail(err)
		}
	case "remove":
		if err := l.Remove(ctx, id, netns, opts...); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown command %q", cmd))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gocni-client:", err)
	os.Exit(1)
}
