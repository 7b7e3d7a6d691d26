//! Targets and memory against real processes (no ptrace, no CPU-wide events).

use hwbp_fixtures::{Fixture, KREAD, SHLIB, THREADS, WRITER};
use hwbp_linux::memory::{read_memory, read_value, MemoryError};
use hwbp_linux::target::{
    format_cpu_list, online_cpus, possible_cpus, process_comm, process_exists, process_of_thread,
    require_online, thread_comm, thread_exists, threads_of, TargetError,
};

#[test]
fn threads_of_lists_prestarted_threads() {
    let threads = Fixture::spawn(THREADS, &["3"]).unwrap();
    let pid = threads.pid();
    let mut expected = threads.ready().list("tids").unwrap();
    expected.push(pid);
    expected.sort_unstable();
    assert_eq!(threads_of(pid).unwrap(), expected);
    for &tid in &expected {
        assert!(thread_exists(pid, tid));
        assert_eq!(process_of_thread(tid).unwrap(), pid);
        assert_eq!(thread_comm(pid, tid).unwrap(), "threads");
    }
    assert_eq!(process_comm(pid).unwrap(), "threads");
}

#[test]
fn missing_processes_and_threads_are_named() {
    let writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid();
    let gone = {
        let other = Fixture::spawn(WRITER, &[]).unwrap();
        other.pid()
    }; // killed and reaped on drop
    assert!(process_exists(pid));
    assert!(!process_exists(gone));
    assert_eq!(
        threads_of(gone).unwrap_err().to_string(),
        format!("no such process {gone}")
    );
    assert_eq!(
        process_comm(gone).unwrap_err().to_string(),
        format!("no such process {gone}")
    );
    assert_eq!(
        thread_comm(pid, gone).unwrap_err().to_string(),
        format!("no such thread {gone} in process {pid}")
    );
    assert!(matches!(threads_of(0), Err(TargetError::InvalidId(0))));
}

#[test]
fn cpu_lists_from_sysfs() {
    let online = online_cpus().unwrap();
    let possible = possible_cpus().unwrap();
    let parallelism = std::thread::available_parallelism().unwrap().get();
    assert_eq!(online.len(), parallelism);
    assert!(online.iter().all(|cpu| possible.contains(cpu)));
    assert_eq!(
        format_cpu_list(&online),
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .trim()
    );
    require_online(&online).unwrap();
    let absent = possible.last().unwrap() + 1;
    assert_eq!(
        require_online(&[absent]).unwrap_err().to_string(),
        format!(
            "CPU {absent} is not online (online CPUs: {})",
            format_cpu_list(&online)
        )
    );
}

#[test]
fn reads_fixture_memory() {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid();
    assert_eq!(read_value(pid, writer.addr(), 8).unwrap(), 0x1234);
    writer.command("go 5").unwrap();
    assert_eq!(read_value(pid, writer.addr(), 8).unwrap(), 0x1234 + 5);
    assert_eq!(read_value(pid, writer.addr(), 2).unwrap(), 0x1239);

    let shlib = Fixture::spawn(SHLIB, &[]).unwrap();
    assert_eq!(read_value(shlib.pid(), shlib.addr(), 4).unwrap(), 7);

    let mut kread = Fixture::spawn(KREAD, &[]).unwrap();
    kread.command("go").unwrap();
    let mut buffer = [0u8; 30];
    assert_eq!(
        read_memory(kread.pid(), kread.addr(), &mut buffer).unwrap(),
        30
    );
    assert_eq!(&buffer, b"hwbp kernel-mode write payload");

    assert!(matches!(
        read_value(pid, 0x10, 8),
        Err(MemoryError::Unmapped { addr: 0x10, .. })
    ));
}
