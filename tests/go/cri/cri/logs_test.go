package cri

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// logLine is one line of a CRI log file: "<RFC3339Nano time> <stdout|stderr> <P|F> <text>".
type logLine struct {
	time   time.Time
	stream string
	tag    string
	text   string
}

var logLineFormat = regexp.MustCompile(`^(\S+) (stdout|stderr) (P|F) (.*)$`)

func readLog(t testing.TB, path string) []logLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the container log: %v", err)
	}
	var out []logLine
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		t.Errorf("the log %s does not end with a newline: %q", path, text)
	}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := logLineFormat.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("a log line not in the CRI format: %q", line)
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("log line time %q: %v", m[1], err)
		}
		out = append(out, logLine{at, m[2], m[3], m[4]})
	}
	return out
}

// logStreams reassembles each stream from the log: P lines continue, F lines end with a newline.
func logStreams(t testing.TB, path string) (stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	for _, l := range readLog(t, path) {
		b := &out
		if l.stream == "stderr" {
			b = &errOut
		}
		b.WriteString(l.text)
		if l.tag == "F" {
			b.WriteString("\n")
		}
	}
	return out.String(), errOut.String()
}

// waitLog waits until the container's stdout in its log holds text.
func waitLog(t testing.TB, c clients, id, text string) {
	t.Helper()
	path := containerStatus(t, c, id).LogPath
	poll(t, "the log of "+id+" shows "+text, 20*time.Second, func() bool {
		if !exists(path) {
			return false
		}
		stdout, _ := logStreams(t, path)
		return strings.Contains(stdout, text)
	})
}

// TestContainerLogFormat: the container's output lands in <log_directory>/<log_path> in the CRI format:
// one line per output line with its time and stream; a line over 16 KiB is split into P(artial) lines
// and a last F(ull) one; output the container ends without a newline is a P line; a line written in
// two pieces is still one F line.
func TestContainerLogFormat(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "logs"))
	start := time.Now()
	id := runContainer(t, c, p, containerConfig("talker", `echo first
echo second to stderr >&2
printf 'written in '; sleep 0.2; printf 'two pieces\n'
printf '%20000s\n' | /bin/busybox tr ' ' x
echo "  spaces   kept  "
printf 'no newline at the end'`))
	st := waitExited(t, c, id)
	end := time.Now()
	if st.LogPath != p.config.LogDirectory+"/talker/0.log" {
		t.Fatalf("log path %q", st.LogPath)
	}
	// The runtime stops writing the log once it reports the exit: nothing is missing now.
	lines := readLog(t, st.LogPath)
	type entry struct{ stream, tag, text string }
	var got []entry
	last := map[string]time.Time{}
	for _, l := range lines {
		got = append(got, entry{l.stream, l.tag, l.text})
		if l.time.Before(start.Add(-time.Second)) || l.time.After(end.Add(time.Second)) {
			t.Errorf("log line time %v outside the container's run (%v to %v)", l.time, start, end)
		}
		if l.time.Before(last[l.stream]) {
			t.Errorf("%s log times go backwards: %v after %v", l.stream, l.time, last[l.stream])
		}
		last[l.stream] = l.time
	}
	xs := strings.Repeat("x", 20000)
	want := []entry{
		{"stdout", "F", "first"},
		{"stdout", "F", "written in two pieces"},
		{"stdout", "P", xs[:16384]},
		{"stdout", "F", xs[16384:]},
		{"stdout", "F", "  spaces   kept  "},
		{"stdout", "P", "no newline at the end"},
	}
	var stdout, stderr []entry
	for _, e := range got {
		if e.stream == "stdout" {
			stdout = append(stdout, e)
		} else {
			stderr = append(stderr, e)
		}
	}
	if len(stdout) != len(want) {
		t.Fatalf("stdout log lines %d, want %d: %v", len(stdout), len(want), short(stdout))
	}
	for i := range want {
		if stdout[i] != want[i] {
			t.Errorf("stdout log line %d: %v, want %v", i, short([]entry{stdout[i]}), short([]entry{want[i]}))
		}
	}
	if len(stderr) != 1 || stderr[0] != (entry{"stderr", "F", "second to stderr"}) {
		t.Errorf("stderr log lines %v", stderr)
	}
}

var xRun = regexp.MustCompile(`x{20,}`)

// short prints log entries with long runs of x shortened to their length.
func short(v interface{}) string {
	return xRun.ReplaceAllStringFunc(fmt.Sprint(v), func(run string) string { return fmt.Sprintf("x*%d", len(run)) })
}
