package ebpf

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DisableTxChecksumOffload turns off transmit checksum offload on
// interface ifname of the namespace at netnsPath (ethtool -K IF tx off).
//
// XDP rewrites checksums incrementally and must see complete checksums.
// Frames from a real NIC have them; frames that a local socket sent over a
// veth (the lab's external client, nodes talking to each other over veths)
// carry only the pseudo-header sum, to be completed by a device that never
// comes. Turning the offload off on the sending veth makes the sender's
// stack compute full checksums.
func DisableTxChecksumOffload(netnsPath, ifname string) error {
	return inNetNS(netnsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		// struct ethtool_value { __u32 cmd; __u32 data; }
		val := [2]uint32{0x17 /* ETHTOOL_STXCSUM */, 0}
		var ifr [unix.IFNAMSIZ + 24]byte
		copy(ifr[:unix.IFNAMSIZ-1], ifname)
		*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val))
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
			return fmt.Errorf("ethtool tx off on %s: %w", ifname, errno)
		}
		return nil
	})
}
