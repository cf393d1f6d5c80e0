// Package pgtest starts throwaway PostgreSQL servers for tests: initdb into
// a temporary directory, a server on 127.0.0.1 and a free port, stopped and
// removed at the end. No test uses a server it did not start.
//
// It runs Debian's PostgreSQL binaries (package postgresql, installed by
// `make deps`); when they are missing the tests that need a server fail
// with a message that says so.
package pgtest

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for Exec
)

// Password is the superuser's password on every test server: tests check
// that it never shows up in output.
const Password = "s3cret-Pa55word"

// Server is a running throwaway PostgreSQL server.
type Server struct {
	Port int
	dir  string
	bin  string
	cred *syscall.Credential
	done chan error
	cmd  *exec.Cmd
	dbs  atomic.Int64
}

// binDir finds initdb and postgres: $PG_BIN, then Debian's newest
// /usr/lib/postgresql/N/bin, then $PATH.
func binDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: install Debian's postgresql package (`make deps` does) or set PG_BIN")
}

// credential is who runs the server: PostgreSQL refuses to run as root, so
// root runs it as the postgres user (or nobody).
func credential() (*syscall.Credential, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start initializes and starts a server. Stop it with Stop.
func Start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dl4img-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, cred: cred}
	if err := s.start(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(s.dir, "pw")
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid))
	}
	// Password authentication over TCP, so wrong-password errors are real.
	initdb := s.command("initdb", "-D", s.data(), "-U", "postgres", "--pwfile", pwfile, "-E", "UTF8", "--locale", "C.UTF-8",
		"--auth-host", "scram-sha-256", "--auth-local", "trust", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	return s.run()
}

// run starts the server on the initialized data directory and waits until
// it accepts connections.
func (s *Server) run() error {
	port := s.Port
	// Durability is not what these tests check: trade it for speed.
	s.cmd = s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_min_messages=fatal")
	var log bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &log, &log
	// The server dies with the test process even if it is killed: the
	// starting goroutine keeps its OS thread (Pdeathsig follows the thread).
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	s.done = make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.done <- s.cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			// Accepting connections is not the same as ready: ask.
			if s.command("pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q").Run() == nil {
				return nil
			}
		}
		select {
		case err := <-s.done:
			s.cmd = nil
			return fmt.Errorf("postgres exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not start in time\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// command runs one of the server binaries as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "PGPASSWORD=" + Password}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		s.cmd = nil
	}
	os.RemoveAll(s.dir)
}

// Kill stops the server at once, as if the machine had gone away; its
// data stays until Stop.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
}

// Down stops the server cleanly (fast shutdown: sessions end, transactions
// roll back), keeping its data for Up.
func (s *Server) Down() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		s.cmd = nil
	}
}

// Up starts a server stopped by Down or Kill again, on the same port and
// data.
func (s *Server) Up() error {
	if s.cmd != nil {
		return nil
	}
	return s.run()
}

// URL is the address of database db as the superuser, with the password.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", Password), Host: fmt.Sprintf("127.0.0.1:%d", s.Port),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDB creates an empty database and returns its URL.
func (s *Server) NewDB() (string, error) {
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	out, err := s.command("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres", name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("createdb: %v: %s", err, out)
	}
	return s.URL(name), nil
}

// shared is the one server of a test binary, started by the first test
// that needs it and stopped by Main: one initdb per package, one database
// per test.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns the test binary's server, starting it if needed. Use Main
// in TestMain to stop it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.once.Do(func() { shared.srv, shared.err = Start() })
	if shared.err != nil {
		tb.Fatalf("PostgreSQL test server: %v", shared.err)
	}
	return shared.srv
}

// NewDB creates an empty database on the shared server and returns its URL.
func NewDB(tb testing.TB) string {
	tb.Helper()
	u, err := Shared(tb).NewDB()
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// Main runs the tests and stops the shared server, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	return code
}

// Exec runs query (statements separated by semicolons) on the database at
// dsn, e.g. to make one that is not dl4img's.
func Exec(tb testing.TB, dsn, query string) {
	tb.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		tb.Fatal(err)
	}
}

// Private starts a server of the test's own, for tests that stop or kill
// it, and returns it with a new database on it; it is stopped when the
// test ends.
func Private(tb testing.TB) (*Server, string) {
	tb.Helper()
	srv, err := Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	dsn, err := srv.NewDB()
	if err != nil {
		tb.Fatal(err)
	}
	return srv, dsn
}
