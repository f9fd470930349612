//! The snapshot of Armbian's configuration next to the repository (`../shared/armbian`, at
//! commit 82a0c923f9), read as Quire reads any checkout.

use std::path::PathBuf;

use quire_armbian::{BoardSupport, ReleaseSupport, Tree};

fn snapshot() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/armbian");
    assert!(root.join("config/boards").is_dir(), "the Armbian snapshot is expected at {}", root.display());
    root
}

#[test]
fn the_snapshots_boards_families_and_releases_are_read() {
    let tree = Tree::read(&snapshot()).unwrap();
    assert_eq!(tree.boards.len(), 403, "every board file but the README");
    let rock = tree.board("rock-5b").unwrap();
    assert_eq!(
        (rock.name.as_str(), rock.support, rock.family.as_deref(), rock.arch.as_deref()),
        ("Rock 5B", BoardSupport::Supported, Some("rockchip-rk3588"), Some("arm64"))
    );
    assert_eq!(rock.branches, ["current", "edge", "vendor"]);
    assert!(rock.description.as_deref().unwrap().starts_with("Rockchip RK3588 SoC octa core"));
    assert_eq!(rock.maintainers, ["amazingfate", "linhz0hz"]);
    assert_eq!(rock.vars["IMAGE_PARTITION_TABLE"], "gpt");
    // Every support level is there, and every board with a family has an architecture.
    for level in [BoardSupport::Supported, BoardSupport::Community, BoardSupport::EndOfSupport, BoardSupport::TvBox] {
        assert!(tree.boards.iter().any(|b| b.support == level), "{level:?}");
    }
    let tv = tree.board("aml-s805-mxq").unwrap();
    assert_eq!((tv.support, tv.name.as_str(), tv.arch.as_deref()), (BoardSupport::TvBox, "MXQ", Some("armhf")));
    let unarched: Vec<&str> =
        tree.boards.iter().filter(|b| b.family.is_some() && b.arch.is_none()).map(|b| b.id.as_str()).collect();
    assert!(unarched.is_empty(), "{unarched:?}");
    let mut arches: Vec<&str> = tree.families.values().map(String::as_str).collect();
    arches.sort();
    arches.dedup();
    assert_eq!(arches, ["amd64", "arm64", "armhf", "loong64", "riscv64"]);
    // One LoongArch board, and one release built for it: the schema's release rule will need this.
    let loong = tree.board("uefi-loong64").unwrap();
    assert_eq!(loong.arch.as_deref(), Some("loong64"));
    let for_loong: Vec<&str> = tree
        .releases
        .iter()
        .filter(|r| r.architectures.iter().any(|a| a == "loong64"))
        .map(|r| r.codename.as_str())
        .collect();
    assert_eq!(for_loong.len(), 1, "{for_loong:?}");

    let noble = tree.release("noble").unwrap();
    assert_eq!((noble.name.as_str(), noble.support), ("Ubuntu noble 24.04", ReleaseSupport::Supported));
    assert_eq!(noble.architectures, ["arm64", "armhf", "riscv64", "amd64"]);
    let bookworm = tree.release("bookworm").unwrap();
    assert_eq!(
        (bookworm.support, bookworm.architectures.contains(&"riscv64".to_string())),
        (ReleaseSupport::Community, false)
    );
    assert_eq!(tree.release("buster").unwrap().support, ReleaseSupport::EndOfSupport);
    assert_eq!(tree.releases.len(), 13);
}

#[test]
fn a_directory_that_is_not_a_checkout_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("quire-armbian-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = Tree::read(&dir).unwrap_err().to_string();
    assert!(e.contains("config/sources/families") || e.contains("config/boards"), "{e}");
    std::fs::create_dir_all(dir.join("config/sources/families")).unwrap();
    std::fs::create_dir_all(dir.join("config/boards")).unwrap();
    let e = Tree::read(&dir).unwrap_err().to_string();
    assert!(e.ends_with("no board files (*.conf, *.csc, *.eos, *.tvb): is this an Armbian checkout?"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The schema derived from the snapshot accepts real builds and refuses, naming the field, a
/// branch the board does not build, a release not built for its architecture, and a desktop on a
/// minimal image.
#[test]
fn the_derived_schema_accepts_real_builds_and_refuses_what_armbian_cannot_build() {
    let tree = Tree::read(&snapshot()).unwrap();
    let schema = quire_armbian::schema(&tree, "82a0c923f9");
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let ok = |c: serde_json::Value| {
        let errors: Vec<String> = validator.iter_errors(&c).map(|e| format!("{}: {e}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{c}: {errors:?}");
    };
    let refused = |c: serde_json::Value, field: &str| {
        let paths: Vec<String> = validator.iter_errors(&c).map(|e| e.instance_path().to_string()).collect();
        assert!(paths.iter().any(|p| p == field), "{c}: {paths:?}");
    };
    use serde_json::json;
    ok(json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"}));
    ok(
        json!({"BOARD": "rock-5b", "BRANCH": "vendor", "RELEASE": "bookworm", "BUILD_DESKTOP": "yes", "DESKTOP_ENVIRONMENT": "gnome"}),
    );
    ok(json!({"BOARD": "uefi-loong64", "BRANCH": tree.board("uefi-loong64").unwrap().branches[0], "RELEASE": "sid"}));
    refused(json!({"BOARD": "rock-5b", "BRANCH": "legacy", "RELEASE": "noble"}), "/BRANCH");
    refused(
        json!({"BOARD": "uefi-loong64", "BRANCH": tree.board("uefi-loong64").unwrap().branches[0], "RELEASE": "noble"}),
        "/RELEASE",
    );
    refused(
        json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "BUILD_MINIMAL": "yes", "BUILD_DESKTOP": "yes"}),
        "/BUILD_DESKTOP",
    );
    refused(json!({"BOARD": "no-such-board", "BRANCH": "current", "RELEASE": "noble"}), "/BOARD");
    let missing: Vec<String> = validator
        .iter_errors(&json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "BUILD_DESKTOP": "yes"}))
        .map(|e| e.to_string())
        .collect();
    assert!(missing.iter().any(|m| m.contains("DESKTOP_ENVIRONMENT")), "{missing:?}");
    // The switches: an F2FS image needs its size; values outside Armbian's are refused by field.
    let base = json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"});
    let with = |extra: serde_json::Value| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    ok(with(json!({"ROOTFS_TYPE": "f2fs", "FIXED_IMAGE_SIZE": 7000, "COMPRESS_OUTPUTIMAGE": "sha,img,xz",
                   "IMAGE_PARTITION_TABLE": "gpt", "NETWORKING_STACK": "network-manager", "EXTRAWIFI": "no"})));
    let f2fs: Vec<String> =
        validator.iter_errors(&with(json!({"ROOTFS_TYPE": "f2fs"}))).map(|e| e.to_string()).collect();
    assert!(f2fs.iter().any(|m| m.contains("FIXED_IMAGE_SIZE")), "{f2fs:?}");
    refused(with(json!({"ROOTFS_TYPE": "zfs"})), "/ROOTFS_TYPE");
    refused(with(json!({"COMPRESS_OUTPUTIMAGE": "sha,rar"})), "/COMPRESS_OUTPUTIMAGE");
    refused(with(json!({"NETWORKING_STACK": "connman"})), "/NETWORKING_STACK");
    refused(with(json!({"FIXED_IMAGE_SIZE": "big"})), "/FIXED_IMAGE_SIZE");
    // Each board is offered with its name and hardware, and the schema stays small enough to serve.
    let rock =
        schema["properties"]["BOARD"]["oneOf"].as_array().unwrap().iter().find(|b| b["const"] == "rock-5b").unwrap();
    assert_eq!(rock["title"], "Rock 5B");
    assert!(rock["description"].as_str().unwrap().ends_with("(supported)"));
    assert!(schema.to_string().len() < 200_000, "{} bytes", schema.to_string().len());
}

/// Quire ships the schema of the snapshot it was built with (`schemas/armbian-<commit>.json`):
/// it is what the snapshot gives, byte for byte. `QUIRE_BLESS=1 cargo test -p quire-armbian`
/// writes it anew after a change to the reader or the schema.
#[test]
fn the_shipped_schema_is_the_snapshots() {
    let tree = Tree::read(&snapshot()).unwrap();
    let made = serde_json::to_string_pretty(&quire_armbian::schema(&tree, quire_armbian::SNAPSHOT)).unwrap() + "\n";
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/armbian-{}.json", quire_armbian::SNAPSHOT));
    if std::env::var_os("QUIRE_BLESS").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == made,
        "{} is not what the snapshot gives: QUIRE_BLESS=1 cargo test -p quire-armbian",
        path.display()
    );
    assert!(quire_armbian::shipped() == made, "the schema compiled in is not the file: rebuild");
}

/// The checker explains each problem in words about the field, adds Quire's own rules (no
/// interactive menu, no shell characters) and warns of boards nobody maintains; the build's
/// arguments carry every default so Armbian never stops to ask.
#[test]
fn the_checker_names_the_field_and_says_what_to_do() {
    use quire_armbian::{Checker, Severity};
    use serde_json::json;
    let checker = Checker::new(serde_json::from_str(quire_armbian::shipped()).unwrap()).unwrap();
    let problems = |c: serde_json::Value| checker.check(&c);
    let one = |c: serde_json::Value, path: &str| {
        let all = problems(c.clone());
        all.into_iter().find(|p| p.path == path).unwrap_or_else(|| panic!("{c}: no problem at {path}"))
    };
    assert_eq!(problems(json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"})), []);

    let p = one(json!({"BOARD": "rock-5b", "BRANCH": "legacy", "RELEASE": "noble"}), "/BRANCH");
    assert_eq!(
        (p.code, p.message.as_str()),
        ("not_allowed", "rock-5b does not build the 'legacy' kernel branch; it builds current, edge or vendor")
    );
    let p = one(json!({"BOARD": "uefi-loong64", "BRANCH": "edge", "RELEASE": "noble"}), "/RELEASE");
    assert_eq!(p.message, "'noble' is not built for loong64, the architecture of uefi-loong64; choose sid");
    let p = one(json!({"BOARD": "rock-5c-max", "BRANCH": "current", "RELEASE": "noble"}), "/BOARD");
    assert_eq!((p.code, p.message.as_str()), ("unknown", "'rock-5c-max' is not a board of this Armbian configuration"));
    let p = one(json!({"BOARD": "rock-5b", "BRANCH": "current"}), "/RELEASE");
    assert_eq!((p.code, p.message.as_str()), ("required", "Release is required"));
    let minimal = json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "BUILD_MINIMAL": "yes", "BUILD_DESKTOP": "yes"});
    assert!(one(minimal, "/BUILD_DESKTOP").message.starts_with("a minimal image has no desktop"));
    let desktop = json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "BUILD_DESKTOP": "yes"});
    assert_eq!(one(desktop, "/DESKTOP_ENVIRONMENT").message, "a desktop image names its desktop environment");
    let size = json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "FIXED_IMAGE_SIZE": "big"});
    assert_eq!(one(size, "/FIXED_IMAGE_SIZE").message, "Image size (MiB) must be a whole number, not big");
    let out = json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,rar"});
    assert_eq!(one(out, "/COMPRESS_OUTPUTIMAGE").code, "format");

    // Quire's rules, in the same shape.
    let p = one(
        json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "KERNEL_CONFIGURE": "yes"}),
        "/KERNEL_CONFIGURE",
    );
    assert_eq!((p.code, p.severity), ("interactive", Severity::Error));
    let p = one(json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "EXTRA": "a$(reboot)"}), "/EXTRA");
    assert_eq!(p.code, "unsafe_value");
    assert!(p.message.starts_with("EXTRA holds '$'"), "{}", p.message);

    // A board at the end of its support builds, with a warning.
    let tree = Tree::read(&snapshot()).unwrap();
    let old = tree.boards.iter().find(|b| b.support == BoardSupport::EndOfSupport && !b.branches.is_empty()).unwrap();
    let arch = old.arch.clone().unwrap();
    let release = tree
        .releases
        .iter()
        .find(|r| r.architectures.contains(&arch) && r.support == ReleaseSupport::Supported)
        .unwrap();
    let config = json!({"BOARD": old.id, "BRANCH": old.branches[0], "RELEASE": release.codename});
    let all = problems(config.clone());
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].path.as_str(), all[0].code, all[0].severity), ("/BOARD", "unmaintained", Severity::Warning));
    assert!(checker.build_arguments(&config).is_some());

    // Every default the configuration leaves out is passed, so Armbian never asks.
    let args = checker
        .build_arguments(&json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "BUILD_MINIMAL": "yes"}))
        .unwrap();
    for a in [
        "BOARD=rock-5b",
        "BRANCH=current",
        "RELEASE=noble",
        "BUILD_MINIMAL=yes",
        "BUILD_DESKTOP=no",
        "KERNEL_CONFIGURE=no",
    ] {
        assert!(args.iter().any(|x| x == a), "{a} in {args:?}");
    }
    assert_eq!(checker.build_arguments(&json!({"BOARD": "rock-5b"})), None);
}
