//! The contract is versioned: a WIT package in `wit/` must mean exactly what its released copy
//! of the same version in `wit/released/` means, so a change to the contract cannot ship under
//! a version callers already built against (`client-config` once gained two fields under an
//! unchanged `0.1.0`). Both sides are parsed with `wit-parser` and compared by meaning: types,
//! fields and cases in order, functions, worlds; doc comments and formatting do not count.
//!
//! The component says which version it is: its metadata is read back here with parsers we did
//! not write, and must name the world's package and version.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use wit_parser::{
    Function, FunctionKind, Handle, PackageId, PackageName, Resolve, SourceMap, Stability, Type,
    TypeDefKind, TypeId, TypeOwner, WorldItem,
};

/// The meaning of every released package version, as the SHA-256 of its rendering below. A
/// released version is frozen: callers built against it. Editing its copy in `wit/released/`
/// to match a changed `wit/` is the mistake this list catches; a new release adds its line
/// (the failure message prints it).
const RELEASED: &[(&str, &str)] = &[
    (
        "empiriolabs:happyhorse@0.1.0",
        "f4aed6f58d44a21be3846f6c1501f7d3a693d93a82001e647c0d3eb3ba7ebc6a",
    ),
    (
        "empiriolabs:happyhorse@0.2.0",
        "3df16f07b51b4f2c0a3344a7141dbc0a4fb2ca9d005545c8596f23a1604e0355",
    ),
    (
        "empiriolabs:happyhorse@0.3.0",
        "01eab74c23a9c94d8da154c946e657200f8d2768d6d6cf7186e8d57d18ce69d9",
    ),
    (
        "videogen:api@0.1.0",
        "490619b947be322859cf4035327d049a281cad7a87bcf053081e8bf2a45242d7",
    ),
    (
        "videogen:api@0.2.0",
        "78aa2a52b4205de1682e37f1042818b570ea376a4c3009255b1292c0e820576b",
    ),
    (
        "videogen:api@0.3.0",
        "53d0fdd8f5b833c245b96bb56cde23ae91a27c06658bde74dca01d39b5d1c6dd",
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The packages of `wit/`: the world's package and those under `wit/deps/`, as wit-bindgen and
/// Wasmtime's `bindgen!` read them.
fn current() -> (Resolve, Vec<PackageId>) {
    let wit = workspace().join("wit");
    let deps = subdirs(&wit.join("deps"));
    load(&wit, &deps)
}

/// Every package in `wit/released/`, one folder per version.
fn released() -> (Resolve, Vec<PackageId>) {
    let dirs = subdirs(&workspace().join("wit/released"));
    let (main, deps) = dirs
        .split_first()
        .expect("wit/released/ holds at least one version");
    load(main, deps)
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The package in each folder (its `*.wit` files, not its subfolders), resolved together so
/// that one can use another. Returns the packages in the order of the folders.
fn load(main: &Path, deps: &[PathBuf]) -> (Resolve, Vec<PackageId>) {
    let group = |dir: &Path| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wit"))
            .collect();
        files.sort();
        let mut map = SourceMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            map.push_str(&file.display().to_string(), text);
        }
        map.parse()
            .unwrap_or_else(|(_, e)| panic!("parsing the WIT in {}: {e}", dir.display()))
    };
    let main_group = group(main);
    let dep_groups: Vec<_> = deps.iter().map(|dir| group(dir)).collect();
    let names: Vec<PackageName> = std::iter::once(&main_group)
        .chain(&dep_groups)
        .map(|group| group.main.name.clone())
        .collect();
    let mut resolve = Resolve::default();
    resolve
        .push_groups(main_group, dep_groups)
        .unwrap_or_else(|e| panic!("resolving the WIT in {}: {e}", main.display()));
    let ids = names
        .iter()
        .map(|name| {
            resolve
                .package_names
                .get(name)
                .copied()
                .expect("every package pushed is in the resolve")
        })
        .collect();
    (resolve, ids)
}

/// `namespace:name@version`.
fn package_id(resolve: &Resolve, package: PackageId) -> String {
    resolve.packages[package].name.to_string()
}

/// The folder a package version's released copy belongs in.
fn released_dir(name: &PackageName) -> String {
    let version = name.version.as_ref().map(ToString::to_string);
    format!(
        "{}-{}@{}",
        name.namespace,
        name.name,
        version.unwrap_or_else(|| "<version>".into())
    )
}

/// A package's meaning, item by item (`interface video-gen`, `world happyhorse`), each as text.
/// Types are named as callers name them (`videogen:api/video-gen@0.3.0.client-config`), so a
/// `use` of another package's type is its name and version, not that type's contents: each
/// package is checked against its own released copy.
fn meaning(resolve: &Resolve, package: PackageId) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for (name, &id) in &resolve.packages[package].interfaces {
        items.insert(format!("interface {name}"), interface(resolve, id));
    }
    for (name, &id) in &resolve.packages[package].worlds {
        let world = &resolve.worlds[id];
        let mut text = stability(&world.stability);
        for (direction, entries) in [("import", &world.imports), ("export", &world.exports)] {
            let mut lines: Vec<String> = entries
                .iter()
                .map(|(key, item)| {
                    let what = match item {
                        WorldItem::Interface {
                            id, stability: s, ..
                        } => {
                            match resolve.interfaces[*id].name {
                                Some(_) => format!("{}interface", stability(s)),
                                // An interface declared inside the world: its contents count.
                                None => format!("{{\n{}}}", interface(resolve, *id)),
                            }
                        }
                        WorldItem::Function(f) => function(resolve, f),
                        WorldItem::Type { id, .. } => definition(resolve, *id),
                    };
                    format!("{direction} {}: {what}\n", resolve.name_world_key(key))
                })
                .collect();
            lines.sort();
            text.extend(lines);
        }
        items.insert(format!("world {name}"), text);
    }
    items
}

fn interface(resolve: &Resolve, id: wit_parser::InterfaceId) -> String {
    let iface = &resolve.interfaces[id];
    let mut lines: Vec<String> = iface
        .types
        .iter()
        .map(|(name, &ty)| format!("type {name} = {}\n", definition(resolve, ty)))
        .chain(
            iface
                .functions
                .values()
                .map(|f| format!("func {}\n", function(resolve, f))),
        )
        .collect();
    // Declaration order of types and functions means nothing; field and case order does.
    lines.sort();
    stability(&iface.stability) + &lines.concat()
}

fn stability(stability: &Stability) -> String {
    match stability {
        Stability::Unknown => String::new(),
        other => format!("@{other:?} "),
    }
}

fn function(resolve: &Resolve, f: &Function) -> String {
    let kind = match f.kind {
        FunctionKind::Freestanding => "",
        FunctionKind::AsyncFreestanding => "async ",
        FunctionKind::Method(_) => "method ",
        FunctionKind::AsyncMethod(_) => "async method ",
        FunctionKind::Static(_) => "static ",
        FunctionKind::AsyncStatic(_) => "async static ",
        FunctionKind::Constructor(_) => "constructor ",
    };
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, reference(resolve, &p.ty)))
        .collect();
    let result = f
        .result
        .map(|ty| format!(" -> {}", reference(resolve, &ty)))
        .unwrap_or_default();
    format!(
        "{}{kind}{}({}){result}",
        stability(&f.stability),
        f.name,
        params.join(", ")
    )
}

/// What a type is: its fields or cases in order, or the type it names.
fn definition(resolve: &Resolve, id: TypeId) -> String {
    let def = &resolve.types[id];
    let body = match &def.kind {
        TypeDefKind::Record(r) => {
            let fields: Vec<String> = r
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, reference(resolve, &f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        TypeDefKind::Variant(v) => {
            let cases: Vec<String> = v
                .cases
                .iter()
                .map(|c| match &c.ty {
                    Some(ty) => format!("{}({})", c.name, reference(resolve, ty)),
                    None => c.name.clone(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Enum(e) => {
            let cases: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
            format!("enum {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Flags(f) => {
            let flags: Vec<&str> = f.flags.iter().map(|f| f.name.as_str()).collect();
            format!("flags {{ {} }}", flags.join(", "))
        }
        TypeDefKind::Resource => "resource".to_string(),
        _ => anonymous(resolve, &def.kind),
    };
    stability(&def.stability) + &body
}

/// How a type is referred to: a named type by its full name, any other by its structure.
fn reference(resolve: &Resolve, ty: &Type) -> String {
    let Type::Id(id) = ty else {
        return format!("{ty:?}").to_lowercase();
    };
    let def = &resolve.types[*id];
    match (&def.name, def.owner) {
        (Some(name), TypeOwner::Interface(owner)) => match resolve.id_of(owner) {
            Some(owner) => format!("{owner}.{name}"),
            None => name.clone(),
        },
        (Some(name), TypeOwner::World(world)) => {
            format!("{}.{name}", resolve.worlds[world].name)
        }
        _ => anonymous(resolve, &def.kind),
    }
}

fn anonymous(resolve: &Resolve, kind: &TypeDefKind) -> String {
    let r = |ty: &Type| reference(resolve, ty);
    let maybe = |ty: &Option<Type>| ty.as_ref().map(r).unwrap_or_else(|| "_".into());
    match kind {
        TypeDefKind::Type(ty) => r(ty),
        TypeDefKind::Option(ty) => format!("option<{}>", r(ty)),
        TypeDefKind::List(ty) => format!("list<{}>", r(ty)),
        TypeDefKind::FixedLengthList(ty, n) => format!("list<{}, {n}>", r(ty)),
        TypeDefKind::Map(k, v) => format!("map<{}, {}>", r(k), r(v)),
        TypeDefKind::Result(res) => format!("result<{}, {}>", maybe(&res.ok), maybe(&res.err)),
        TypeDefKind::Tuple(t) => {
            let types: Vec<String> = t.types.iter().map(r).collect();
            format!("tuple<{}>", types.join(", "))
        }
        TypeDefKind::Handle(Handle::Own(id)) => format!("own<{}>", r(&Type::Id(*id))),
        TypeDefKind::Handle(Handle::Borrow(id)) => format!("borrow<{}>", r(&Type::Id(*id))),
        TypeDefKind::Future(ty) => format!("future<{}>", maybe(ty)),
        TypeDefKind::Stream(ty) => format!("stream<{}>", maybe(ty)),
        other => format!("{other:?}"),
    }
}

fn digest(items: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (item, text) in items {
        hash.update(format!("{item}\n{text}\n").as_bytes());
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The lines of each item that differ: `-` as released, `+` in `wit/`.
fn differences(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let keys: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        let lines = |side: Option<&String>| -> BTreeSet<String> {
            side.map(|text| text.lines().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let (now, then) = (lines(ours.get(key)), lines(theirs.get(key)));
        if ours.get(key) == theirs.get(key) {
            continue;
        }
        out.push_str(&format!("{key}:\n"));
        for line in then.difference(&now) {
            out.push_str(&format!("- {line}\n"));
        }
        for line in now.difference(&then) {
            out.push_str(&format!("+ {line}\n"));
        }
    }
    out
}

#[test]
fn every_wit_package_means_what_its_released_version_meant() {
    let (now, packages) = current();
    let (then, released) = released();
    let by_name: BTreeMap<String, PackageId> = released
        .iter()
        .map(|&id| (package_id(&then, id), id))
        .collect();
    let mut failures = Vec::new();
    for package in packages {
        let name = &now.packages[package].name;
        let id = package_id(&now, package);
        let ours = meaning(&now, package);
        match by_name.get(&id) {
            None => failures.push(format!(
                "{id} has no released copy. If you bumped its version for a change, copy its \
                 .wit files into wit/released/{}/ and add {} to CHANGELOG.md; otherwise put the \
                 version back to the released one.",
                released_dir(name),
                name.version
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )),
            Some(&copy) => {
                let theirs = meaning(&then, copy);
                if ours != theirs {
                    failures.push(format!(
                        "{id} changed, but its version did not: callers built against the \
                         released {id} would break. Bump the version (before 1.0, a breaking \
                         change bumps the minor version), everywhere it is named, copy the new \
                         WIT into wit/released/ and add it to CHANGELOG.md.\n{}",
                        differences(&ours, &theirs)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn released_versions_are_frozen_and_filed_by_name() {
    let (then, released) = released();
    let dirs = subdirs(&workspace().join("wit/released"));
    let mut failures = Vec::new();
    for (&package, dir) in released.iter().zip(&dirs) {
        let name = &then.packages[package].name;
        let id = package_id(&then, package);
        let folder = dir.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        if folder != released_dir(name) {
            failures.push(format!(
                "wit/released/{folder}/ holds {id}: name the folder {}",
                released_dir(name)
            ));
        }
        let hash = digest(&meaning(&then, package));
        match RELEASED.iter().find(|(released, _)| *released == id) {
            Some((_, frozen)) if *frozen == hash => {}
            Some(_) => failures.push(format!(
                "the released copy of {id} no longer means what was released: restore \
                 wit/released/{folder}/ from git (a change is a new version)"
            )),
            None => failures.push(format!(
                "{id} is new in wit/released/: once its release is final, record it in \
                 RELEASED in tests/all/contract.rs as (\"{id}\", \"{hash}\")"
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_changelog_has_an_entry_for_every_released_version() {
    let changelog = std::fs::read_to_string(workspace().join("CHANGELOG.md"))
        .expect("CHANGELOG.md at the workspace root");
    let (then, released) = released();
    for package in released {
        let name = &then.packages[package].name;
        let version = name
            .version
            .as_ref()
            .expect("released packages carry a version");
        assert!(
            changelog.contains(&format!("\n## [{version}]")),
            "CHANGELOG.md has no `## [{version}]` entry, for {name}"
        );
    }
}

/// The component's own custom sections (not those of the modules inside it), each with its
/// data and offset, in order.
fn outer_custom_sections(wasm: &[u8]) -> Vec<(String, Vec<u8>, u64)> {
    let mut depth = 0usize;
    let mut sections = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.expect("the component parses") {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(section) if depth == 0 => sections.push((
                section.name().to_string(),
                section.data().to_vec(),
                section.data_offset(),
            )),
            _ => {}
        }
    }
    sections
}

/// The release component must stay within this (BENCHMARKS.md §4); its metadata is part of it.
const SIZE_LIMIT: usize = 240 * 1024;

#[test]
fn the_component_names_itself_and_its_version_as_the_world_does() {
    let wasm = video_gen_artifacts::HAPPYHORSE;
    let sections = outer_custom_sections(wasm);
    let only = |name: &str| {
        let found: Vec<_> = sections.iter().filter(|(n, ..)| n == name).collect();
        assert_eq!(
            found.len(),
            1,
            "the component has {} `{name}` sections",
            found.len()
        );
        found[0]
    };
    let text = |name: &str| String::from_utf8(only(name).1.clone()).expect("UTF-8 metadata");

    let (now, packages) = current();
    let world = packages
        .iter()
        .map(|&id| &now.packages[id].name)
        .find(|name| name.namespace == "empiriolabs" && name.name == "happyhorse")
        .expect("wit/world.wit declares empiriolabs:happyhorse");
    let version = world
        .version
        .as_ref()
        .expect("a versioned world")
        .to_string();

    let (_, names, offset) = only("component-name");
    let names = wasm_metadata::ComponentNames::from_bytes(names, *offset)
        .expect("wasm-metadata reads the component-name section");
    let name = format!("{}:{}", world.namespace, world.name);
    assert_eq!(names.get_name(), Some(&name), "the component's name");

    assert_eq!(
        text("version"),
        version,
        "the component's version is the world's"
    );
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "the world's version and the workspace's (the crates', the User-Agent's) differ: \
         release them together"
    );
    let description = text("description");
    assert!(
        description.contains("HappyHorse")
            && !description.contains('\n')
            && description.len() <= 100,
        "one short line: {description:?}"
    );
    assert_eq!(text("licenses"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(text("source"), env!("CARGO_PKG_REPOSITORY"));

    let (_, producers, offset) = only("producers");
    let producers = wasm_metadata::Producers::from_bytes(producers, *offset)
        .expect("wasm-metadata reads the producers section");
    let tools = producers
        .get("processed-by")
        .expect("the tools that made it");
    assert!(
        tools.get("wit-component").is_some(),
        "processed-by: {:?}",
        tools.iter().collect::<Vec<_>>()
    );

    assert!(
        wasm.len() <= SIZE_LIMIT,
        "the component is {} bytes, over its {SIZE_LIMIT}-byte limit",
        wasm.len()
    );
}
