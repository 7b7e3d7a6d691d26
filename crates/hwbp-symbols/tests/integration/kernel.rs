use hwbp_symbols::{KernelSymbols, SymbolKind};

#[test]
fn kallsyms_finds_schedule_at_its_listed_address() {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let listed = text
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == "schedule").then(|| u64::from_str_radix(f[0], 16).unwrap())
        })
        .expect("/proc/kallsyms lists schedule");
    assert_ne!(
        listed, 0,
        "run as root: kptr_restrict hides kernel addresses"
    );

    let kernel = KernelSymbols::from_kallsyms().unwrap();
    let schedule = kernel.resolve("schedule").unwrap();
    assert_eq!(schedule.addr, listed);
    assert_eq!(schedule.kind, SymbolKind::Function);
    assert_eq!(schedule.module, None);
    assert!(schedule.size.unwrap() > 3);
    let (name, offset) = kernel.symbolize(listed + 3).unwrap();
    assert_eq!(offset, 3);
    assert_eq!(kernel.resolve(name).unwrap().addr, listed);
}

#[test]
fn kallsyms_without_data_symbols_explains_how_to_find_jiffies() {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let lists_jiffies = text.lines().any(|l| l.ends_with(" jiffies"));
    let kernel = KernelSymbols::from_kallsyms().unwrap();
    assert_eq!(kernel.has_data_symbols(), lists_jiffies);
    match kernel.resolve("jiffies") {
        Ok(j) => {
            assert!(lists_jiffies);
            assert_eq!(j.kind, SymbolKind::Data);
        }
        Err(e) => {
            assert!(!lists_jiffies);
            assert!(
                e.to_string().starts_with(
                    "kernel symbol 'jiffies' not found: this kernel's /proc/kallsyms lists no \
                     data symbols (built without CONFIG_KALLSYMS_ALL); pass --system-map \
                     /boot/System.map-$(uname -r) or --vmlinux FILE"
                ),
                "{e}"
            );
        }
    }
}
