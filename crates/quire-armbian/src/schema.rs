//! The JSON Schema (draft-07) of an image build, derived from a checkout: which boards there
//! are (title, hardware, support level), the kernel branches each builds, the releases (and
//! which architectures each is built for), and the switches of a build. Rules that tie fields
//! together and that JSON Schema can say are in the schema: a board builds only its own
//! branches, only releases built for its architecture, a minimal image has no desktop, and a
//! desktop names its environment. The same file validates in the browser (AJV through rjsf)
//! and on the server.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::tree::{ReleaseSupport, Tree};

/// The desktop environments Armbian builds (`DESKTOP_ENVIRONMENT`).
pub const DESKTOP_ENVIRONMENTS: &[&str] =
    &["budgie", "cinnamon", "deepin", "enlightenment", "gnome", "i3-wm", "kde-plasma", "mate", "xfce", "xmonad"];

/// Root filesystems Armbian makes images with (`ROOTFS_TYPE`).
pub const ROOTFS_TYPES: &[&str] = &["ext4", "f2fs", "btrfs", "nilfs2", "xfs", "nfs"];

/// `COMPRESS_OUTPUTIMAGE`: a comma-separated list of sha, gpg, img, xz, zst.
const COMPRESS_PATTERN: &str = "^(sha|gpg|img|xz|zst)(,(sha|gpg|img|xz|zst))*$";

/// The schema of a build of `tree`, named by `version` (the checkout it comes from).
pub fn schema(tree: &Tree, version: &str) -> Value {
    let boards: Vec<Value> = tree
        .boards
        .iter()
        .map(|b| {
            let mut description = b.description.clone().unwrap_or_default();
            let support = b.support.label();
            description =
                if description.is_empty() { support.to_string() } else { format!("{description} ({support})") };
            // `x-support` is Quire's: the checker warns of a board nobody maintains; validators
            // ignore keywords they do not know.
            json!({"const": b.id, "title": b.name, "description": description, "x-support": b.support})
        })
        .collect();
    let releases: Vec<Value> = tree
        .releases
        .iter()
        .map(|r| {
            let support = match r.support {
                ReleaseSupport::Supported => "supported",
                ReleaseSupport::Community => "community supported",
                ReleaseSupport::EndOfSupport => "end of support",
            };
            json!({"const": r.codename, "title": r.name, "description": format!("{support}; built for {}", r.architectures.join(", ")), "x-support": r.support})
        })
        .collect();
    let mut branches: Vec<&str> = tree.boards.iter().flat_map(|b| b.branches.iter().map(String::as_str)).collect();
    branches.sort();
    branches.dedup();

    // One rule per set of boards that build the same branches on the same architecture.
    let mut groups: BTreeMap<(Vec<String>, String), Vec<&str>> = BTreeMap::new();
    for b in tree.boards.iter().filter(|b| !b.branches.is_empty()) {
        let arch = b.arch.clone().unwrap_or_default();
        groups.entry((b.branches.clone(), arch)).or_default().push(&b.id);
    }
    let mut rules: Vec<Value> = groups
        .into_iter()
        .map(|((board_branches, arch), ids)| {
            let eligible: Vec<&str> =
                tree.releases.iter().filter(|r| r.architectures.contains(&arch)).map(|r| r.codename.as_str()).collect();
            json!({
                "if": {"properties": {"BOARD": {"enum": ids}}, "required": ["BOARD"]},
                "then": {"properties": {
                    "BRANCH": {"enum": board_branches, "description": "The kernel branches this board builds"},
                    "RELEASE": {"enum": eligible, "description": format!("The releases built for {arch}")},
                }}
            })
        })
        .collect();
    rules.push(json!({
        "if": {"properties": {"BUILD_MINIMAL": {"const": "yes"}}, "required": ["BUILD_MINIMAL"]},
        "then": {"properties": {"BUILD_DESKTOP": {"enum": ["no"], "description": "A minimal image has no desktop"}}}
    }));
    rules.push(json!({
        "if": {"properties": {"BUILD_DESKTOP": {"const": "yes"}}, "required": ["BUILD_DESKTOP"]},
        "then": {"required": ["DESKTOP_ENVIRONMENT"]}
    }));
    // Armbian sizes an F2FS image only when told how big the card is.
    rules.push(json!({
        "if": {"properties": {"ROOTFS_TYPE": {"const": "f2fs"}}, "required": ["ROOTFS_TYPE"]},
        "then": {"required": ["FIXED_IMAGE_SIZE"]}
    }));

    let yes_no = |title: &str, description: &str| json!({"type": "string", "title": title, "description": description, "enum": ["yes", "no"], "default": "no"});
    let mut properties = Map::new();
    properties.insert(
        "BOARD".into(),
        json!({"type": "string", "title": "Board", "description": "The board the image is for", "oneOf": boards}),
    );
    properties.insert(
        "BRANCH".into(),
        json!({"type": "string", "title": "Kernel branch", "description": "legacy, vendor, current or edge: the boards list which they build", "enum": branches}),
    );
    properties.insert(
        "RELEASE".into(),
        json!({"type": "string", "title": "Release", "description": "The Debian or Ubuntu release of the userspace", "oneOf": releases}),
    );
    properties.insert(
        "BUILD_MINIMAL".into(),
        yes_no("Minimal image", "Only what the board needs to boot and be reached over the network"),
    );
    properties.insert("BUILD_DESKTOP".into(), yes_no("Desktop", "Build an image with a desktop environment"));
    properties.insert(
        "DESKTOP_ENVIRONMENT".into(),
        json!({"type": "string", "title": "Desktop environment", "description": "Which desktop, when one is built", "enum": DESKTOP_ENVIRONMENTS}),
    );
    properties.insert(
        "KERNEL_CONFIGURE".into(),
        yes_no(
            "Configure the kernel",
            "yes runs the kernel's menuconfig during the build; no uses Armbian's configuration",
        ),
    );
    properties.insert(
        "ROOTFS_TYPE".into(),
        json!({"type": "string", "title": "Root filesystem", "enum": ROOTFS_TYPES, "default": "ext4",
               "description": "ext4 unless the board's kernel supports another; f2fs needs FIXED_IMAGE_SIZE; nfs boots from a network share"}),
    );
    properties.insert(
        "FIXED_IMAGE_SIZE".into(),
        json!({"type": "integer", "title": "Image size (MiB)", "minimum": 1,
               "description": "The image's size in MiB, smaller than the card it goes on; required for f2fs"}),
    );
    properties.insert(
        "IMAGE_PARTITION_TABLE".into(),
        json!({"type": "string", "title": "Partition table", "enum": ["msdos", "gpt"], "default": "msdos",
               "description": "msdos (MBR) or gpt"}),
    );
    properties.insert(
        "NETWORKING_STACK".into(),
        json!({"type": "string", "title": "Networking", "enum": ["network-manager", "systemd-networkd", "none"],
               "description": "The networking stack installed (none adds none)"}),
    );
    properties.insert(
        "EXTRAWIFI".into(),
        json!({"type": "string", "title": "Extra Wi-Fi drivers", "enum": ["yes", "no"], "default": "yes",
               "description": "Out-of-tree Wi-Fi and Bluetooth drivers for popular USB and SDIO chipsets"}),
    );
    properties.insert(
        "INSTALL_HEADERS".into(),
        yes_no("Kernel headers", "Pre-install the kernel headers (for DKMS modules)"),
    );
    properties.insert(
        "BSPFREEZE".into(),
        yes_no("Freeze firmware packages", "Hold U-Boot, kernel, DTB and BSP packages back from upgrades"),
    );
    properties.insert(
        "COMPRESS_OUTPUTIMAGE".into(),
        json!({"type": "string", "title": "Outputs", "pattern": COMPRESS_PATTERN,
               "description": "What to make of the image, comma-separated: sha (a checksum file), gpg (a signature), img (keep the raw image), xz or zst (compressed)"}),
    );
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": format!("https://quire.dev/schemas/armbian-build/{version}.json"),
        "title": "Armbian image build",
        "description": format!("An Armbian image build, from the Armbian configuration at {version}"),
        "type": "object",
        "required": ["BOARD", "BRANCH", "RELEASE"],
        "properties": properties,
        "allOf": rules,
    })
}
