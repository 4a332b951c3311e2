//! Resident memory and CPU time of processes, from /proc (Linux). Missing values (another OS,
//! a process that exited) are `None`, never an error: they are reported, not required.

/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`), which is 100 on
/// every Linux architecture's user ABI.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of a process (`None`: this process) in seconds.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: fields are counted after
    // its closing parenthesis. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total CPU time of the whole machine (all cores), in ticks, from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tcanopy\nVmPeak:\t  200 kB\nVmRSS:\t   12345 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        let stat = "4242 (can opy (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        let machine = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(machine), Some((160, 1000)));
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(rss_kib(std::process::id()).unwrap() > 0);
            assert!(cpu_seconds(None).is_some());
        }
    }
}
