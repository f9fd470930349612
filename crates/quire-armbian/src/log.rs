//! Reading a build's log as Armbian writes it: its alert lines (`--> (SECONDS) LEVEL: message`,
//! colours and all) become stages with a level and the time since the build began, and the
//! stages a progress figure. Nothing else of a line is interpreted; the line itself is kept
//! as printed, colours included, for the browser to draw.

use serde::Serialize;

/// One alert of Armbian's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Seconds since the build began, as Armbian counted them.
    pub seconds: u64,
    /// `info`, `warn`, `err`, `ext`, `debug`, … in lower case.
    pub level: String,
    pub message: String,
}

/// Removes ANSI escape sequences (colours, cursor moves) from a line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters final-byte; others: ESC, intermediates (space to /), final byte.
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            while chars.peek().is_some_and(|c| (' '..='/').contains(c)) {
                chars.next();
            }
            chars.next();
        }
    }
    out
}

/// The alert a line holds, if it is one: `--> (12) INFO: Preparing host`.
pub fn parse_alert(line: &str) -> Option<Alert> {
    let plain = strip_ansi(line);
    let rest = plain.trim_start().strip_prefix("-->")?.trim_start();
    let rest = rest.strip_prefix('(')?;
    let (seconds, rest) = rest.split_once(')')?;
    let seconds = seconds.trim().parse().ok()?;
    let (level, message) = rest.trim_start().split_once(':')?;
    let level = level.trim();
    if level.is_empty() || !level.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some(Alert { seconds, level: level.to_ascii_lowercase(), message: message.trim().to_string() })
}

/// Where a build stands, from the alerts so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stages {
    /// The stages begun, in order: each `info` alert that names a step of a build.
    pub stages: Vec<Stage>,
    /// Warnings and errors seen.
    pub warnings: u32,
    pub errors: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    /// Seconds since the build began.
    pub at: u64,
    /// The log line it began on.
    pub line: i64,
}

/// Armbian's steps in the order a build takes them, with how far along each says a build is
/// (percent), recognised by words of the alert that begins them.
const STEPS: &[(&[&str], f32)] = &[
    (&["preparing host", "prepare host", "checking host"], 3.0),
    (&["downloading", "fetching", "sources"], 8.0),
    (&["u-boot", "uboot", "bootloader"], 20.0),
    (&["kernel"], 35.0),
    (&["firmware"], 45.0),
    (&["rootfs", "root filesystem", "debootstrap", "mmdebstrap"], 55.0),
    (&["installing", "packages", "apt"], 65.0),
    (&["customiz"], 72.0),
    (&["image", "partition", "filesystem"], 80.0),
    (&["compress", "checksum", "sha256", "xz", "zstd"], 92.0),
    (&["done building", "build finished", "image is ready", "runtime"], 99.0),
];

fn step_of(message: &str) -> Option<f32> {
    let m = message.to_ascii_lowercase();
    STEPS.iter().find(|(words, _)| words.iter().any(|w| m.contains(w))).map(|(_, p)| *p)
}

/// The stage a line begins, if it does: an `info` alert naming a step of a build (numbered
/// `line_number`). Stateless, so whoever reads a log from any line finds the same stages.
pub fn stage_of(line_number: i64, line: &str) -> Option<Stage> {
    let alert = parse_alert(line)?;
    (matches!(alert.level.as_str(), "info" | "ext") && step_of(&alert.message).is_some()).then_some(Stage {
        name: alert.message,
        at: alert.seconds,
        line: line_number,
    })
}

impl Stages {
    /// Takes in one line (numbered `line`); answers the alert it held, if any.
    pub fn feed(&mut self, line_number: i64, line: &str) -> Option<Alert> {
        let alert = parse_alert(line)?;
        match alert.level.as_str() {
            "warn" | "wrn" => self.warnings += 1,
            "err" | "error" => self.errors += 1,
            _ => self.stages.extend(stage_of(line_number, line)),
        }
        Some(alert)
    }

    /// How far along the build is (0–99; 100 is for the caller to say once it finished).
    pub fn percent(&self) -> f32 {
        self.stages.iter().filter_map(|s| step_of(&s.name)).fold(0.0, f32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_read_through_colours() {
        let line = "--> (  7) \u{1b}[1;32mINFO\u{1b}[0;0m: Compiling u-boot [ v2024.01 ]";
        assert_eq!(
            parse_alert(line),
            Some(Alert { seconds: 7, level: "info".into(), message: "Compiling u-boot [ v2024.01 ]".into() })
        );
        assert_eq!(parse_alert("--> (12) WARN: no space").unwrap().level, "warn");
        assert_eq!(parse_alert("make: Entering directory"), None);
        assert_eq!(parse_alert("--> (x) INFO: y"), None);
        assert_eq!(parse_alert("--> (3) two words: y"), None);
        assert_eq!(strip_ansi("\u{1b}[31mred\u{1b}[0m \u{1b}(Bplain"), "red plain");
    }

    #[test]
    fn stages_make_progress_and_count_problems() {
        let mut s = Stages::default();
        let lines = [
            "--> (1) INFO: Preparing host",
            "gcc -O2 …",
            "--> (40) INFO: Compiling kernel [ 6.6 ]",
            "--> (41) WARN: ccache is cold",
            "--> (300) INFO: Creating rootfs with mmdebstrap",
            "--> (301) DEBUG: kernel: nothing",
            "--> (500) ERR: something failed",
        ];
        for (i, l) in lines.iter().enumerate() {
            s.feed(i as i64 + 1, l);
        }
        let names: Vec<&str> = s.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Preparing host", "Compiling kernel [ 6.6 ]", "Creating rootfs with mmdebstrap"]);
        assert_eq!((s.stages[1].at, s.stages[1].line), (40, 3));
        assert_eq!((s.warnings, s.errors), (1, 1));
        assert_eq!(s.percent(), 55.0);
        // Read from any line on, the same lines are stages.
        assert_eq!(stage_of(3, lines[2]), Some(s.stages[1].clone()));
        assert_eq!(stage_of(4, lines[3]), None);
        assert_eq!(stage_of(6, lines[5]), None, "debug alerts are not stages");
    }
}
