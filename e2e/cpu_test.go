package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// daemonCPU returns the CPU time (user and system) the daemons of ds have
// used so far, from /proc (0 where it cannot be read).
func daemonCPU(t testing.TB, ds []*daemon) time.Duration {
	cpu, _ := daemonStat(ds)
	return cpu
}

// daemonFaults returns the minor page faults the daemons of ds have taken
// so far (first touches of fresh memory, mostly), from /proc.
func daemonFaults(ds []*daemon) int64 {
	_, faults := daemonStat(ds)
	return faults
}

// daemonStat sums the CPU time and the minor page faults of the daemons
// of ds from /proc/PID/stat (nothing for a daemon where it cannot be read).
func daemonStat(ds []*daemon) (time.Duration, int64) {
	var total time.Duration
	var faults int64
	for _, d := range ds {
		if d.cmd == nil || d.cmd.Process == nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		mf, _ := strconv.ParseInt(f[7], 10, 64)
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+k) * clockTick
		faults += mf
	}
	return total, faults
}

// cpuWindow is how long after an operation returns its CPU is still
// counted (the members apply the commit the coordinator sent).
const cpuWindow = 50 * time.Millisecond

// reportCPU reports the daemons' CPU per operation, in milliseconds.
func reportCPU(b *testing.B, cpu time.Duration, ops int) {
	if ops > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(ops), "cpu-ms/op")
	}
}

// BenchmarkIdleCPU measures what a federation of N real daemons costs at
// rest (heartbeats only): the CPU all daemons use per second of wall
// time, over 5 s once the federation settled (1000 = one core busy).
//
//	go test ./e2e -run '^$' -bench BenchmarkIdleCPU -benchtime 1x
func BenchmarkIdleCPU(b *testing.B) {
	for _, n := range []int{10, 25} {
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			ds := startFederation(b, n, benchFlags()...)
			waitSettled(b, ds)
			time.Sleep(2 * time.Second)
			var total float64
			for i := 0; i < b.N; i++ {
				c0, t0 := daemonCPU(b, ds), time.Now()
				time.Sleep(5 * time.Second)
				total += float64(daemonCPU(b, ds)-c0) / float64(time.Since(t0)) * 1000
			}
			b.ReportMetric(total/float64(b.N), "cpu-ms/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
