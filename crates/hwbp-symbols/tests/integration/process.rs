use std::path::Path;

use hwbp_symbols::{ProcessSymbols, SymbolError, SymbolKind};

use crate::fixtures::{built, marker_line, objdump_store, Fixture};

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// resolve() returns exactly the address the fixture printed for its own variable, and the
/// executable's bias matches its ELF type.
fn check_executable_variable(exe: &Path, expect_pie: bool) {
    let fixture = Fixture::spawn(exe, &[]);
    let symbols = ProcessSymbols::load(fixture.pid()).unwrap();
    let counter = symbols.resolve("counter").unwrap();
    assert_eq!(counter.addr, fixture.value("counter"));
    assert_eq!(counter.size, 8);
    assert_eq!(counter.kind, SymbolKind::Data);
    assert_eq!(counter.name, "counter");
    assert_eq!(file_name(&counter.module), file_name(exe));

    let function = symbols.resolve("bump_counter").unwrap();
    assert_eq!(function.addr, fixture.value("bump_counter"));
    assert_eq!(function.kind, SymbolKind::Function);

    let main_module = &symbols.modules()[0];
    assert!(main_module.is_executable);
    assert_eq!(main_module.position_independent, expect_pie);
    if !expect_pie {
        assert_eq!(main_module.bias, 0);
    } else {
        assert_ne!(main_module.bias, 0);
        assert_eq!(main_module.bias % 4096, 0);
    }
}

#[test]
fn pie_executable_variable_resolves_to_printed_address() {
    check_executable_variable(&built().pie, true);
}

#[test]
fn non_pie_executable_variable_resolves_to_printed_address() {
    check_executable_variable(&built().non_pie, false);
}

#[test]
fn shared_library_variable_resolves_to_printed_address() {
    for exe in [&built().pie, &built().non_pie] {
        let fixture = Fixture::spawn(exe, &[]);
        let symbols = ProcessSymbols::load(fixture.pid()).unwrap();
        let lib_var = symbols.resolve("lib_var").unwrap();
        assert_eq!(lib_var.addr, fixture.value("lib_var"));
        assert_eq!(lib_var.kind, SymbolKind::Data);
        assert_eq!(file_name(&lib_var.module), file_name(&built().lib));
        let lib_fn = symbols.resolve("lib_fn").unwrap();
        assert_eq!(lib_fn.addr, fixture.value("lib_fn"));

        // The executable references lib_exported, so the linker copied it into the
        // executable: the executable's definition (searched first) is the live one.
        let exported = symbols.resolve("lib_exported").unwrap();
        assert_eq!(exported.addr, fixture.value("lib_exported"));
        assert_eq!(file_name(&exported.module), file_name(exe));

        let lib = symbols
            .modules()
            .into_iter()
            .find(|m| file_name(&m.path) == file_name(&built().lib))
            .unwrap();
        assert!(lib.position_independent && !lib.is_executable);
    }
}

#[test]
fn symbolize_gives_function_offset_and_line() {
    let writer_line = marker_line("writer.c", "bump_counter");
    let lib_line = marker_line("lib.c", "lib_fn");
    for exe in [&built().pie, &built().non_pie] {
        let fixture = Fixture::spawn(exe, &[]);
        let symbols = ProcessSymbols::load(fixture.pid()).unwrap();

        let loc = symbols
            .symbolize(fixture.value("bump_counter") + 3)
            .unwrap();
        assert_eq!(loc.function, "bump_counter");
        assert_eq!(loc.offset, 3);
        assert_eq!(loc.file.as_deref(), Some("writer.c"));
        assert_eq!(loc.line, Some(writer_line));
        assert_eq!(
            loc.to_string(),
            format!("bump_counter+0x3 (writer.c:{writer_line})")
        );

        let loc = symbols.symbolize(fixture.value("lib_fn") + 3).unwrap();
        assert_eq!((loc.function.as_str(), loc.offset), ("lib_fn", 3));
        assert_eq!(loc.file.as_deref(), Some("lib.c"));
        assert_eq!(loc.line, Some(lib_line));
        assert_eq!(file_name(&loc.module), file_name(&built().lib));
    }
}

#[test]
fn typo_lists_near_matches() {
    let fixture = Fixture::spawn(&built().pie, &[]);
    let symbols = ProcessSymbols::load(fixture.pid()).unwrap();
    let err = symbols.resolve("countr").unwrap_err();
    let SymbolError::NotFound {
        name,
        pid,
        near,
        library_count,
        ..
    } = &err
    else {
        panic!("expected NotFound, got {err:?}");
    };
    assert_eq!(name, "countr");
    assert_eq!(*pid, fixture.pid());
    assert_eq!(&near[..2], ["count_r", "counter"]);
    assert!(near.len() <= 3);
    assert_eq!(*library_count, symbols.modules().len() - 1);
    let expected = format!(
        "no symbol 'countr' in process {} ({} and {} libraries); did you mean: {}?",
        fixture.pid(),
        symbols.executable().display(),
        library_count,
        near.join(", ")
    );
    assert_eq!(err.to_string(), expected);
}

#[test]
fn accessing_instruction_is_the_store_before_the_trap_ip() {
    let exe = &built().pie;
    let (func_start, store, after) = objdump_store(exe, "bump_counter", "counter");
    let mut fixture = Fixture::spawn(exe, &[]);
    let symbols = ProcessSymbols::load(fixture.pid()).unwrap();
    let bias = fixture.value("bump_counter") - func_start;
    assert_eq!(
        symbols.accessing_instruction(after + bias, |_, _| None),
        Some(store + bias)
    );
    // An IP in the middle of an instruction has no instruction ending there.
    assert_eq!(
        symbols.accessing_instruction(store + bias + 1, |_, _| None),
        None
    );

    // After the process is gone, everything still works from the snapshot + ELF files.
    fixture.kill();
    assert!(!symbols.is_alive());
    assert_eq!(
        symbols.accessing_instruction(after + bias, |_, _| None),
        Some(store + bias)
    );
    let loc = symbols.symbolize(store + bias).unwrap();
    assert_eq!(loc.function, "bump_counter");
    assert_eq!(loc.offset, store - func_start);
    assert_eq!(
        symbols.resolve("counter").unwrap().addr,
        fixture.value("counter")
    );
    assert!(matches!(
        symbols.refresh(),
        Err(SymbolError::NoSuchProcess { .. })
    ));
}

#[test]
fn dlopened_library_is_found_after_automatic_refresh() {
    let plugin = &built().plugin;
    let mut fixture = Fixture::spawn(&built().pie, &[plugin]);
    let symbols = ProcessSymbols::load(fixture.pid()).unwrap();
    let modules_before = symbols.modules().len();
    assert!(matches!(
        symbols.resolve("plugin_var"),
        Err(SymbolError::NotFound { .. })
    ));
    fixture.send_line();
    fixture.read_until_ready();
    let var = symbols.resolve("plugin_var").unwrap();
    assert_eq!(var.addr, fixture.value("plugin_var"));
    assert_eq!(file_name(&var.module), file_name(plugin));
    assert_eq!(symbols.modules().len(), modules_before + 1);
}

#[test]
fn rust_static_resolves_by_demangled_path() {
    let fixture = Fixture::spawn(&built().rust, &[]);
    let symbols = ProcessSymbols::load(fixture.pid()).unwrap();
    let counter = symbols.resolve("my_crate::COUNTER").unwrap();
    assert_eq!(counter.addr, fixture.value("counter"));
    assert_eq!(counter.name, "my_crate::COUNTER");
    assert_eq!(counter.size, 8);
    assert_eq!(counter.kind, SymbolKind::Data);
    let err = symbols.resolve("my_crate::COUNTR").unwrap_err();
    assert!(
        err.to_string().contains("did you mean: my_crate::COUNTER"),
        "{err}"
    );
}

#[test]
fn unknown_pid_is_no_such_process() {
    // pid_max is at most 2^22 on 64-bit kernels.
    let err = ProcessSymbols::load(4_194_305).unwrap_err();
    assert!(
        matches!(err, SymbolError::NoSuchProcess { pid: 4_194_305 }),
        "{err:?}"
    );
}
