package eas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/wbxml"
)

// fakeMail is a backend.Store that records Open and Close calls. Its
// sessions implement only Close; the tests never call anything else.
type fakeMail struct {
	fakeAuth
	openErr error

	mu     sync.Mutex
	opens  []string // "user:password" per Open
	closes int
}

type fakeSession struct {
	backend.Session // nil: any other method panics, which would fail the test
	m               *fakeMail
}

func (s *fakeSession) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.closes++
	return nil
}

func (m *fakeMail) Open(ctx context.Context, user, password string) (backend.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opens = append(m.opens, user+":"+password)
	if m.openErr != nil {
		return nil, m.openErr
	}
	return &fakeSession{m: m}, nil
}

func withMail(m *fakeMail) envOption {
	return func(c *Config) { c.Mail = m }
}

func TestMailboxOpenedOnceAndClosed(t *testing.T) {
	m := &fakeMail{}
	e := newEnv(t, withMail(m))
	var got []backend.Session
	e.srv.Handle("Settings", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		for range 3 {
			s, err := req.Mailbox(ctx)
			if err != nil {
				return Response{}, err
			}
			got = append(got, s)
		}
		if s := fmt.Sprintf("%+v", *req); strings.Contains(s, testPassword) {
			t.Errorf("printing the Request shows the password: %s", s)
		}
		return Response{}, nil
	})
	w := e.do(post("Settings", "14.1", mustMarshal(t, wbxml.E(wbxml.SettingsSettings))))
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d", w.Code)
	}
	if len(got) != 3 || got[0] != got[1] || got[1] != got[2] {
		t.Errorf("sessions %v, want the same one three times", got)
	}
	if want := []string{testUser + ":" + testPassword}; fmt.Sprint(m.opens) != fmt.Sprint(want) {
		t.Errorf("Open calls %q, want %q", m.opens, want)
	}
	if m.closes != 1 {
		t.Errorf("Close called %d times, want 1", m.closes)
	}
	if strings.Contains(e.log.String(), testPassword) {
		t.Error("the log holds the password")
	}

	// A handler that never asks opens nothing.
	e.srv.Handle("Settings", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, nil
	})
	e.do(post("Settings", "14.1", mustMarshal(t, wbxml.E(wbxml.SettingsSettings))))
	if len(m.opens) != 1 || m.closes != 1 {
		t.Errorf("after a request without Mailbox: %d opens, %d closes; want 1, 1", len(m.opens), m.closes)
	}
}

func TestMailboxErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		version    string
		wantHTTP   int
		wantStatus string
		reauth     bool // the next request asks the authenticator again
	}{
		{"refused 14.1", fmt.Errorf("LOGIN: %w", backend.ErrAuthFailed), "14.1", http.StatusUnauthorized, "", true},
		{"down 14.1", fmt.Errorf("dial: %w", backend.ErrUnavailable), "14.1", http.StatusOK, "111", false},
		{"down 12.1", fmt.Errorf("dial: %w", backend.ErrUnavailable), "12.1", http.StatusServiceUnavailable, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMail{openErr: tc.err}
			e := newEnv(t, withMail(m))
			e.srv.Handle("FolderSync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
				_, err := req.Mailbox(ctx)
				if !errors.Is(err, tc.err) {
					t.Errorf("Mailbox error %v, want it to wrap %v", err, tc.err)
				}
				return Response{}, err
			})
			w := e.do(post("FolderSync", tc.version, folderSyncBody(t)))
			if w.Code != tc.wantHTTP {
				t.Fatalf("HTTP %d, want %d", w.Code, tc.wantHTTP)
			}
			if tc.wantStatus != "" {
				if got := statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus); got != tc.wantStatus {
					t.Errorf("Status %s, want %s", got, tc.wantStatus)
				}
			}
			calls := e.auth.callCount()
			e.do(post("FolderSync", tc.version, folderSyncBody(t)))
			if reauth := e.auth.callCount() > calls; reauth != tc.reauth {
				t.Errorf("second request asked the authenticator: %v, want %v", reauth, tc.reauth)
			}
			if m.closes != 0 {
				t.Errorf("Close called %d times on no session", m.closes)
			}
		})
	}
}

func TestMailboxWithoutStore(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		_, err := req.Mailbox(ctx)
		return Response{}, err
	})
	w := e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	if got := statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus); got != "110" {
		t.Errorf("Status %s, want 110 (server error)", got)
	}
}
