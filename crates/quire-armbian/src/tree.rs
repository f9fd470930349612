//! Reading a checkout's boards, families and releases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why a checkout could not be read: the file, and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// How well Armbian supports a board: its file's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardSupport {
    /// `.conf`
    Supported,
    /// `.csc`: community supported.
    Community,
    /// `.eos`: end of support.
    EndOfSupport,
    /// `.tvb`: a TV box.
    TvBox,
}

impl BoardSupport {
    fn of_suffix(suffix: &str) -> Option<BoardSupport> {
        Some(match suffix {
            "conf" => BoardSupport::Supported,
            "csc" => BoardSupport::Community,
            "eos" => BoardSupport::EndOfSupport,
            "tvb" => BoardSupport::TvBox,
            _ => return None,
        })
    }

    /// As a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            BoardSupport::Supported => "supported",
            BoardSupport::Community => "community supported",
            BoardSupport::EndOfSupport => "end of support",
            BoardSupport::TvBox => "TV box",
        }
    }
}

/// How well Armbian supports a release (`config/distributions/<release>/support`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseSupport {
    Supported,
    /// `csc`: community supported.
    Community,
    /// `eos`: end of support.
    EndOfSupport,
}

/// One board (`config/boards/<id>.<support>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Board {
    /// The file's name without its suffix: what `BOARD=` takes.
    pub id: String,
    /// `BOARD_NAME`, or the id.
    pub name: String,
    /// The hardware, from the file's first line (`# Rockchip RK3588 SoC octa core …`).
    pub description: Option<String>,
    pub support: BoardSupport,
    /// `BOARDFAMILY`.
    pub family: Option<String>,
    /// The family's `ARCH` (`arm64`, `armhf`, `riscv64`, `amd64`).
    pub arch: Option<String>,
    /// `KERNEL_TARGET`: the kernel branches it builds (`current`, `edge`, `vendor`, …).
    pub branches: Vec<String>,
    /// `BOARD_MAINTAINER`, split on spaces.
    pub maintainers: Vec<String>,
    /// `HAS_VIDEO_OUTPUT` is not `no`: a desktop makes sense.
    pub has_video: bool,
    /// Every top-level `KEY="value"` of the file.
    pub vars: BTreeMap<String, String>,
}

/// One release (`config/distributions/<codename>/`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    pub codename: String,
    /// `name`: `Ubuntu noble 24.04`.
    pub name: String,
    pub support: ReleaseSupport,
    /// `architectures`: those it is built for.
    pub architectures: Vec<String>,
    /// `order`, where given: newer releases have larger numbers.
    pub order: Option<u32>,
}

/// A checkout's boards (by id), families' architectures and releases (by codename).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tree {
    pub boards: Vec<Board>,
    pub families: BTreeMap<String, String>,
    pub releases: Vec<Release>,
}

impl Tree {
    /// Reads the checkout at `root` (the directory holding `config/`).
    pub fn read(root: &Path) -> Result<Tree, TreeError> {
        let config = root.join("config");
        let families = read_families(&config.join("sources").join("families"))?;
        let mut boards = Vec::new();
        for path in files(&config.join("boards"))? {
            let Some((id, suffix)) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.rsplit_once('.')) else {
                continue;
            };
            let Some(support) = BoardSupport::of_suffix(suffix) else { continue };
            let text = read(&path)?;
            boards.push(board(id, support, &text, &families));
        }
        boards.sort_by(|a, b| a.id.cmp(&b.id));
        if boards.is_empty() {
            return Err(TreeError::Invalid {
                path: config.join("boards"),
                message: "no board files (*.conf, *.csc, *.eos, *.tvb): is this an Armbian checkout?".into(),
            });
        }
        let mut releases = Vec::new();
        let distributions = config.join("distributions");
        for dir in dirs(&distributions)? {
            let codename = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let field = |name: &str| -> Result<String, TreeError> { Ok(read(&dir.join(name))?.trim().to_string()) };
            let support = match field("support")?.as_str() {
                "supported" => ReleaseSupport::Supported,
                "csc" => ReleaseSupport::Community,
                "eos" => ReleaseSupport::EndOfSupport,
                other => {
                    return Err(TreeError::Invalid {
                        path: dir.join("support"),
                        message: format!("'{other}' is not a support level (supported, csc, eos)"),
                    });
                }
            };
            let architectures =
                field("architectures")?.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
            let order = field("order").ok().and_then(|o| o.parse().ok());
            releases.push(Release { codename, name: field("name")?, support, architectures, order });
        }
        releases.sort_by(|a, b| b.order.cmp(&a.order).then_with(|| a.codename.cmp(&b.codename)));
        Ok(Tree { boards, families, releases })
    }

    pub fn board(&self, id: &str) -> Option<&Board> {
        self.boards.iter().find(|b| b.id == id)
    }

    pub fn release(&self, codename: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.codename == codename)
    }
}

/// The top-level `KEY="value"` (or `'value'`) lines of a shell file, as Armbian's own
/// `armbian_utils.py` reads board files: not indented, optionally after `export ` or
/// `declare -g `; a later line wins.
pub fn vars(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let mut rest = line;
        while let Some(r) = rest.strip_prefix("export ").or_else(|| rest.strip_prefix("declare -g ")) {
            rest = r.trim_start();
        }
        let Some((key, value)) = rest.split_once('=') else { continue };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            continue;
        }
        let quote = match value.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => continue,
        };
        if let Some(end) = value[1..].find(quote) {
            out.insert(key.to_string(), value[1..1 + end].to_string());
        }
    }
    out
}

fn board(id: &str, support: BoardSupport, text: &str, families: &BTreeMap<String, String>) -> Board {
    let vars = vars(text);
    let description =
        text.lines().next().and_then(|l| l.strip_prefix('#')).map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    let list = |key: &str, sep: char| -> Vec<String> {
        vars.get(key)
            .map(|v| v.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    };
    let family = vars.get("BOARDFAMILY").cloned();
    Board {
        id: id.to_string(),
        name: vars.get("BOARD_NAME").cloned().unwrap_or_else(|| id.to_string()),
        description,
        support,
        arch: family.as_ref().and_then(|f| families.get(f)).cloned(),
        family,
        branches: list("KERNEL_TARGET", ','),
        maintainers: list("BOARD_MAINTAINER", ' '),
        has_video: vars.get("HAS_VIDEO_OUTPUT").is_none_or(|v| v != "no"),
        vars,
    }
}

/// Each family's `ARCH`, set in its file or in an include it sources.
fn read_families(dir: &Path) -> Result<BTreeMap<String, String>, TreeError> {
    let mut out = BTreeMap::new();
    for path in files(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".conf")) else {
            continue;
        };
        if let Some(arch) = family_arch(&path, 0)? {
            out.insert(name.to_string(), arch);
        }
    }
    Ok(out)
}

fn family_arch(path: &Path, depth: u32) -> Result<Option<String>, TreeError> {
    let text = read(path)?;
    if let Some(arch) = arch_in(&text) {
        return Ok(Some(arch));
    }
    // `source "${BASH_SOURCE%/*}/include/rockchip64_common.inc"`
    for line in text.lines() {
        let Some(included) = line.trim().strip_prefix("source \"${BASH_SOURCE%/*}/").and_then(|r| r.strip_suffix('"'))
        else {
            continue;
        };
        let next = path.parent().unwrap_or(Path::new(".")).join(included);
        if depth < 4
            && next.is_file()
            && let Some(arch) = family_arch(&next, depth + 1)?
        {
            return Ok(Some(arch));
        }
    }
    Ok(None)
}

/// A top-level `ARCH=arm64` (quoted or not, after `declare -g ` or `export ` or not).
fn arch_in(text: &str) -> Option<String> {
    text.lines().filter(|l| !l.starts_with(char::is_whitespace)).find_map(|line| {
        let rest = line.trim_start_matches("declare -g ").trim_start_matches("export ");
        let value = rest.strip_prefix("ARCH=")?.trim_matches(|c| c == '"' || c == '\'');
        let value: String = value.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        (!value.is_empty()).then_some(value)
    })
}

fn read(path: &Path) -> Result<String, TreeError> {
    let bytes = std::fs::read(path).map_err(|source| TreeError::Io { path: path.to_path_buf(), source })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, TreeError> {
    let io = |source| TreeError::Io { path: dir.to_path_buf(), source };
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(io)?;
    out.sort();
    Ok(out)
}

fn files(dir: &Path) -> Result<Vec<PathBuf>, TreeError> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_file()).collect())
}

fn dirs(dir: &Path) -> Result<Vec<PathBuf>, TreeError> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_assignments_are_read_as_armbian_reads_them() {
        let text = "# Some board\nBOARD_NAME=\"Rock 5B\"\nexport KERNEL_TARGET='current,edge'\n\
                    declare -g BOOT_FDT_FILE=\"rockchip/x.dtb\" # a comment\n  INDENTED=\"no\"\nlower=\"no\"\n\
                    FAMILY_TWEAKS=$(echo)\nBOARD_NAME=\"Rock 5B+\"\n";
        let v = vars(text);
        assert_eq!(v["BOARD_NAME"], "Rock 5B+", "the last wins");
        assert_eq!(v["KERNEL_TARGET"], "current,edge");
        assert_eq!(v["BOOT_FDT_FILE"], "rockchip/x.dtb");
        assert!(!v.contains_key("INDENTED") && !v.contains_key("lower") && !v.contains_key("FAMILY_TWEAKS"));
    }
}
