package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procStatus returns a field of /proc/PID/status in bytes (VmRSS, VmHWM);
// -1 when it cannot be read.
func procStatus(pid int, field string) int64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	return statusField(string(b), field)
}

// statusField reads "Field:   1234 kB" from a /proc status text.
func statusField(text, field string) int64 {
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return -1
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return -1
		}
		return n * 1024
	}
	return -1
}

// metrics reads go_goroutines and process_resident_memory_bytes from the
// gateway's admin /metrics (Prometheus text format); -1 for what it
// cannot get.
func metrics(ctx context.Context, adminURL, token string) (goroutines int, rss int64) {
	goroutines, rss = -1, -1
	if adminURL == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	return parseMetrics(resp.Body)
}

// parseMetrics picks the two gauges out of a Prometheus text exposition.
func parseMetrics(r io.Reader) (goroutines int, rss int64) {
	goroutines, rss = -1, -1
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			goroutines = int(f)
		case "process_resident_memory_bytes":
			rss = int64(f)
		}
	}
	return goroutines, rss
}

// imapConnections counts the ESTABLISHED TCP connections process pid
// holds to addr (host:port), from its socket descriptors and the
// kernel's TCP tables; -1 when they cannot be read.
func imapConnections(pid int, addr string) int {
	if pid <= 0 {
		return -1
	}
	inodes, err := socketInodes(pid)
	if err != nil {
		return -1
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, ok := 0, false
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		ok = true
		n += countConnections(f, inodes, host, port)
		f.Close()
	}
	if !ok {
		return -1
	}
	return n
}

// socketInodes lists the inodes of the sockets among pid's descriptors.
func socketInodes(pid int) (map[string]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	inodes := make(map[string]bool, len(ents))
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return inodes, nil
}

// countConnections counts the lines of a /proc/net/tcp table that are
// ESTABLISHED (st 01), go to host:port and belong to one of inodes.
func countConnections(r io.Reader, inodes map[string]bool, host, port string) int {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return 0
	}
	want := procAddr(ip, uint16(p))
	n := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "01" || !inodes[f[9]] {
			continue
		}
		if strings.EqualFold(f[2], want) || strings.EqualFold(f[2], procAddr6(ip, uint16(p))) {
			n++
		}
	}
	return n
}

// procAddr writes an IPv4 address and port as /proc/net/tcp does: the
// address as a host-order (little-endian) 32-bit hex number, then the port.
func procAddr(ip net.IP, port uint16) string {
	v4 := ip.To4()
	if v4 == nil {
		return ""
	}
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", v4[3], v4[2], v4[1], v4[0], port)
}

// procAddr6 is procAddr for /proc/net/tcp6: four little-endian 32-bit
// words (an IPv4 address appears v4-mapped).
func procAddr6(ip net.IP, port uint16) string {
	v6 := ip.To16()
	if v6 == nil {
		return ""
	}
	var b [16]byte
	for w := 0; w < 4; w++ {
		for i := 0; i < 4; i++ {
			b[w*4+i] = v6[w*4+3-i]
		}
	}
	return strings.ToUpper(hex.EncodeToString(b[:])) + fmt.Sprintf(":%04X", port)
}
