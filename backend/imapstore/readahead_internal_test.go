package imapstore

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestReadAheadDeadlines checks that readAheadConn keeps a connection's
// read deadline semantics although it sets deadlines on the socket late:
// data already buffered is read whatever the deadline, a deadline set
// while no read waits applies to the next read from the socket, and one
// set while a read waits ends that read.
func TestReadAheadDeadlines(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := newReadAheadConn(client)
	defer c.Close()

	go server.Write([]byte("hello"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "he" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// The rest is buffered: an expired deadline does not hide it.
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "llo" {
		t.Fatalf("buffered read %q, %v", buf, err)
	}
	// The buffer is empty: the expired deadline ends the socket read.
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after deadline: %v, want deadline exceeded", err)
	}
	// A deadline cleared before the read lets it wait for data.
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go server.Write([]byte("x"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	// A deadline set while a read waits ends it.
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	for {
		ra := c.(*readAheadConn)
		ra.mu.Lock()
		waiting := ra.reading
		ra.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("waiting read: %v, want deadline exceeded", err)
	}
}
