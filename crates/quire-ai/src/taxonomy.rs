//! The taxonomy service's data: the sections of a PRD, the room types and design styles of a
//! moodboard, each with the prompt fragments that generation puts together. Prompt templates
//! read it to enrich prompts; the quality gate reads which sections a draft needs; the
//! built-in provider reads the keywords (to place a request's statements) and the palettes
//! (to paint its images). Served by `GET /api/v1/taxonomy/...`.

use serde::Serialize;

/// A section of a product requirements document.
#[derive(Debug, Clone, Serialize)]
pub struct PrdSection {
    pub key: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// What a model is asked to write in it.
    pub prompt: &'static str,
    /// A draft without it fails the quality gate.
    pub required: bool,
    /// What it says is a fact about today: the gate refuses figures in it that the request
    /// did not give.
    pub facts: bool,
    /// Words that mark a statement as belonging here (lower case; a trailing `*` matches any
    /// ending). The built-in provider places a request's sentences with them.
    pub keywords: &'static [&'static str],
    /// What to ask when the request says nothing for this section.
    pub question: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomType {
    pub key: &'static str,
    pub name: &'static str,
    pub prompt: &'static str,
    /// What such a room is expected to show.
    pub elements: &'static [&'static str],
}

/// How the built-in provider lays out a style's procedural images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Composition {
    /// Wide open wall, low furniture, lots of light.
    Airy,
    /// Overlapping shapes, many small accents.
    Layered,
    /// Strict rectangles on a grid.
    Grid,
    /// Rounded forms and arches.
    Organic,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesignStyle {
    pub key: &'static str,
    pub name: &'static str,
    pub prompt: &'static str,
    pub negative_prompt: &'static str,
    /// Colours as `#rrggbb`, wall first, then floor, then accents.
    pub palette: &'static [&'static str],
    pub materials: &'static [&'static str],
    pub composition: Composition,
}

pub fn prd_sections() -> &'static [PrdSection] {
    PRD_SECTIONS
}

/// Every PRD section of the taxonomy as a draft's outline, in order.
pub fn prd_outline() -> Vec<crate::Section> {
    prd_sections().iter().map(|s| crate::Section::from_key(s.key)).collect()
}

pub fn prd_section(key: &str) -> Option<&'static PrdSection> {
    PRD_SECTIONS.iter().find(|s| s.key == key)
}

pub fn room_types() -> &'static [RoomType] {
    ROOM_TYPES
}

pub fn room_type(key: &str) -> Option<&'static RoomType> {
    ROOM_TYPES.iter().find(|r| r.key == key)
}

pub fn design_styles() -> &'static [DesignStyle] {
    DESIGN_STYLES
}

pub fn design_style(key: &str) -> Option<&'static DesignStyle> {
    DESIGN_STYLES.iter().find(|s| s.key == key)
}

/// A style named in free text (`"a japandi bedroom"`), by key or name.
pub fn style_in(text: &str) -> Option<&'static DesignStyle> {
    let text = text.to_lowercase().replace(['-', '_'], " ");
    DESIGN_STYLES
        .iter()
        .find(|s| text.contains(&s.name.to_lowercase().replace('-', " ")) || text.contains(&s.key.replace('_', " ")))
}

/// A colour of a palette as RGB.
pub fn rgb(hex: &str) -> [u8; 3] {
    let n = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0x808080);
    [(n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// The words an interior designer would use for a colour (`#rrggbb`): the nearest of the
/// names below, by the "redmean" weighted distance (close to what the eye sees, and cheap).
/// Image models read words, not hex codes.
pub fn colour_name(hex: &str) -> &'static str {
    let [r, g, b] = rgb(hex).map(i32::from);
    COLOUR_NAMES
        .iter()
        .min_by_key(|(_, c)| {
            let [cr, cg, cb] = rgb(c).map(i32::from);
            let mean = (r + cr) / 2;
            let (dr, dg, db) = (r - cr, g - cg, b - cb);
            (((512 + mean) * dr * dr) >> 8) + 4 * dg * dg + (((767 - mean) * db * db) >> 8)
        })
        .map_or("grey", |(name, _)| name)
}

/// A palette in words, each name once, in the palette's order.
pub fn palette_words(hexes: &[String]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in hexes.iter().map(|h| colour_name(h)) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

static COLOUR_NAMES: &[(&str, &str)] = &[
    ("white", "#ffffff"),
    ("warm white", "#f5f0e6"),
    ("ivory", "#fffff0"),
    ("cream", "#f3e5c8"),
    ("beige", "#d8c8ae"),
    ("sand", "#c9b18f"),
    ("taupe", "#8b7d6b"),
    ("greige", "#b5ada1"),
    ("light grey", "#d3d3d3"),
    ("grey", "#8c8c8c"),
    ("charcoal", "#36454f"),
    ("graphite", "#3c3c3a"),
    ("black", "#111111"),
    ("walnut brown", "#5c4033"),
    ("mocha brown", "#705c4a"),
    ("chocolate brown", "#3f2a1e"),
    ("tan", "#d2b48c"),
    ("caramel", "#af6f36"),
    ("terracotta", "#c8643c"),
    ("rust", "#b7410e"),
    ("brick red", "#8e3b2f"),
    ("burgundy", "#6d1a2a"),
    ("blush pink", "#e8c4c0"),
    ("dusty rose", "#c08081"),
    ("coral", "#f08070"),
    ("mustard yellow", "#d4a017"),
    ("ochre", "#c28a2c"),
    ("butter yellow", "#f6e3a1"),
    ("olive green", "#707a3a"),
    ("sage green", "#9caf88"),
    ("forest green", "#2e4a33"),
    ("emerald green", "#1f7a55"),
    ("mint green", "#bfe3c9"),
    ("teal", "#1f6f6f"),
    ("navy blue", "#1f2a44"),
    ("cobalt blue", "#1f4fa8"),
    ("sky blue", "#9cc9e6"),
    ("powder blue", "#c6d8e6"),
    ("slate blue", "#5a6f8c"),
    ("lavender", "#b9a9d3"),
    ("plum", "#6e3b5e"),
    ("gold", "#c9a24a"),
    // Named after the taxonomy's own palettes, so that every style reads right.
    ("dark grey", "#5a5a58"),
    ("soft black", "#2a2a2a"),
    ("camel", "#c19a6b"),
    ("cognac brown", "#8b5a2b"),
    ("berry red", "#b5485d"),
    ("mid grey", "#9e9e9e"),
    ("linen", "#e0d7c6"),
    ("denim blue", "#3a506b"),
    ("pale sage", "#c9d6c3"),
    ("moss green", "#8f9779"),
    ("olive grey", "#6b705c"),
    ("light brown", "#a67b5b"),
    ("deep green", "#1f3b2d"),
];

static PRD_SECTIONS: &[PrdSection] = &[
    PrdSection {
        key: "problem",
        title: "Problem",
        description: "Who has what problem today, and what it costs them.",
        prompt: "State the problem in two to four sentences: who has it, when it happens, and what it costs them today, with no figures the request does not give.",
        required: true,
        facts: true,
        keywords: &[
            "problem",
            "pain*",
            "struggl*",
            "cannot",
            "can't",
            "hard",
            "slow*",
            "manual*",
            "frustrat*",
            "today",
            "currently",
            "broken",
            "lose",
            "losing",
            "waste*",
            "error-prone",
            "tedious",
        ],
        question: "Who has this problem today, how often, and what does it cost them?",
    },
    PrdSection {
        key: "goals",
        title: "Goals",
        description: "The outcomes that mean the product succeeded.",
        prompt: "List three to five goals as outcomes for users or the business, each one line, each verifiable.",
        required: true,
        facts: false,
        keywords: &[
            "goal*",
            "want*",
            "aim*",
            "enable*",
            "so that",
            "improve*",
            "increase*",
            "reduce*",
            "faster",
            "easier",
            "better",
            "help*",
        ],
        question: "What outcome, for users or the business, would show this worked?",
    },
    PrdSection {
        key: "non_goals",
        title: "Non-goals",
        description: "What is deliberately left out.",
        prompt: "List what this work deliberately does not do, so that scope discussions can point at it.",
        required: false,
        facts: false,
        keywords: &["not", "won't", "out of scope", "exclud*", "later", "never", "no longer", "skip"],
        question: "What is deliberately out of scope for this work?",
    },
    PrdSection {
        key: "personas",
        title: "Personas",
        description: "Who the users are and what they need.",
        prompt: "Describe two or three personas: role, context, what they need from this, and what they fear.",
        required: false,
        facts: true,
        keywords: &[
            "persona*",
            "user*",
            "customer*",
            "admin*",
            "manager*",
            "designer*",
            "engineer*",
            "developer*",
            "team*",
            "people",
            "who",
        ],
        question: "Who are the main users, and what does each need from this?",
    },
    PrdSection {
        key: "user_stories",
        title: "User stories",
        description: "What users do, as stories with acceptance criteria.",
        prompt: "Write user stories as 'As a <persona>, I want <action> so that <outcome>', each followed by testable acceptance criteria as a checklist.",
        required: true,
        facts: false,
        keywords: &["as a", "as an", "story", "stories", "able to", "journey", "flow", "i want", "i can"],
        question: "Which user does what, step by step, and how do we know each step works?",
    },
    PrdSection {
        key: "functional_requirements",
        title: "Functional requirements",
        description: "What the product must do.",
        prompt: "List functional requirements as numbered 'must' statements, each testable and tied to a story.",
        required: true,
        facts: false,
        keywords: &[
            "must",
            "support*",
            "allow*",
            "feature*",
            "export*",
            "import*",
            "integrat*",
            "api",
            "upload*",
            "notif*",
            "search*",
            "filter*",
            "create*",
            "edit*",
            "delete*",
            "sync*",
            "share*",
        ],
        question: "What must the product do, stated so that each can be tested?",
    },
    PrdSection {
        key: "non_functional_requirements",
        title: "Non-functional requirements",
        description: "Performance, security, privacy, accessibility, reliability.",
        prompt: "List non-functional requirements with numbers: latency, throughput, availability, security, privacy, accessibility, supported platforms.",
        required: false,
        facts: false,
        keywords: &[
            "performance",
            "fast",
            "latency",
            "secur*",
            "privacy",
            "scal*",
            "availab*",
            "reliab*",
            "accessib*",
            "gdpr",
            "offline",
            "uptime",
            "ms",
            "seconds",
            "mobile",
            "browser*",
            "encrypt*",
        ],
        question: "How fast, secure, available and accessible must it be, in numbers?",
    },
    PrdSection {
        key: "success_metrics",
        title: "Success metrics",
        description: "How success is measured, with targets.",
        prompt: "List success metrics with a baseline, a target and a date for each, and how each is measured.",
        required: true,
        facts: false,
        keywords: &[
            "metric*",
            "measur*",
            "kpi*",
            "%",
            "percent",
            "rate",
            "adoption",
            "retention",
            "conversion",
            "nps",
            "time to",
            "target*",
        ],
        question: "Which numbers will show success, from what baseline to what target?",
    },
    PrdSection {
        key: "risks",
        title: "Risks",
        description: "What could go wrong, and what is done about it.",
        prompt: "List risks with their likelihood, impact and mitigation.",
        required: false,
        facts: false,
        keywords: &[
            "risk*",
            "concern*",
            "might",
            "may",
            "depend*",
            "unknown*",
            "assum*",
            "complian*",
            "legal",
            "worry",
            "worried",
        ],
        question: "What could make this fail, and what would we do about it?",
    },
    PrdSection {
        key: "timeline",
        title: "Timeline",
        description: "Milestones and dates.",
        prompt: "Lay out milestones (prototype, beta, launch) with dates and what each delivers.",
        required: false,
        facts: false,
        keywords: &[
            "by",
            "deadline",
            "launch*",
            "release*",
            "quarter",
            "q1",
            "q2",
            "q3",
            "q4",
            "week*",
            "month*",
            "milestone*",
            "phase*",
            "beta",
            "date*",
            "sprint*",
        ],
        question: "What are the milestones, and by when must each land?",
    },
    PrdSection {
        key: "open_questions",
        title: "Open questions",
        description: "What is not decided yet.",
        prompt: "List the questions still open, each with who should answer it.",
        required: false,
        facts: false,
        keywords: &[],
        question: "What is still undecided?",
    },
];

static ROOM_TYPES: &[RoomType] = &[
    RoomType {
        key: "living_room",
        name: "Living room",
        prompt: "a living room with a sofa, a coffee table and a rug, seen from the doorway",
        elements: &["sofa", "coffee table", "rug", "floor lamp", "shelving"],
    },
    RoomType {
        key: "bedroom",
        name: "Bedroom",
        prompt: "a bedroom with a made bed, bedside tables and soft lighting",
        elements: &["bed", "bedside tables", "wardrobe", "reading light", "textiles"],
    },
    RoomType {
        key: "kitchen",
        name: "Kitchen",
        prompt: "a kitchen with cabinetry, a worktop and an island",
        elements: &["cabinets", "worktop", "island", "pendant lights", "open shelving"],
    },
    RoomType {
        key: "dining_room",
        name: "Dining room",
        prompt: "a dining room with a table set for six under a pendant light",
        elements: &["dining table", "chairs", "pendant light", "sideboard"],
    },
    RoomType {
        key: "bathroom",
        name: "Bathroom",
        prompt: "a bathroom with a vanity, a walk-in shower and tiled walls",
        elements: &["vanity", "mirror", "shower", "tiles", "towels"],
    },
    RoomType {
        key: "home_office",
        name: "Home office",
        prompt: "a home office with a desk by the window, a task chair and shelves",
        elements: &["desk", "task chair", "shelves", "desk lamp", "plants"],
    },
    RoomType {
        key: "kids_room",
        name: "Kids' room",
        prompt: "a child's bedroom with play space, storage and a reading corner",
        elements: &["bed", "toy storage", "play rug", "reading nook"],
    },
    RoomType {
        key: "entryway",
        name: "Entryway",
        prompt: "an entryway with a bench, hooks and a mirror",
        elements: &["bench", "hooks", "mirror", "console", "runner"],
    },
    RoomType {
        key: "outdoor",
        name: "Patio",
        prompt: "an outdoor patio with seating, planters and string lights",
        elements: &["outdoor seating", "planters", "string lights", "paving"],
    },
];

static DESIGN_STYLES: &[DesignStyle] = &[
    DesignStyle {
        key: "scandinavian",
        name: "Scandinavian",
        prompt: "scandinavian interior, light oak, white walls, wool textiles, natural daylight, uncluttered",
        negative_prompt: "clutter, dark, heavy ornament",
        palette: &["#f4f1ec", "#d8c3a5", "#8e8d8a", "#a3b18a", "#3a506b"],
        materials: &["light oak", "wool", "linen", "ceramic"],
        composition: Composition::Airy,
    },
    DesignStyle {
        key: "japandi",
        name: "Japandi",
        prompt: "japandi interior, low furniture, warm minimalism, ash wood, paper lamps, muted earth tones",
        negative_prompt: "clutter, bright colours, glossy plastic",
        palette: &["#ebe5dc", "#b59f84", "#6f5e4c", "#3d3b36", "#9aa58b"],
        materials: &["ash", "paper", "linen", "stone"],
        composition: Composition::Airy,
    },
    DesignStyle {
        key: "industrial",
        name: "Industrial",
        prompt: "industrial loft interior, exposed brick, black steel, concrete floor, leather, edison bulbs",
        negative_prompt: "pastel, frilly, ornate",
        palette: &["#5b5a57", "#8a8a85", "#a0522d", "#2b2b2b", "#c19a6b"],
        materials: &["brick", "steel", "concrete", "leather"],
        composition: Composition::Grid,
    },
    DesignStyle {
        key: "mid_century_modern",
        name: "Mid-century modern",
        prompt: "mid-century modern interior, walnut furniture with tapered legs, mustard and teal accents, clean lines",
        negative_prompt: "rustic, ornate, cluttered",
        palette: &["#f2e8cf", "#8b5a2b", "#d4a017", "#2a7f84", "#c4572a"],
        materials: &["walnut", "teak", "brass", "wool"],
        composition: Composition::Grid,
    },
    DesignStyle {
        key: "bohemian",
        name: "Bohemian",
        prompt: "bohemian interior, layered rugs, rattan, many plants, patterned textiles, warm light",
        negative_prompt: "sterile, monochrome, empty",
        palette: &["#f3e3c3", "#c06c3e", "#7d5a3c", "#4f7942", "#b5485d"],
        materials: &["rattan", "jute", "macrame", "terracotta"],
        composition: Composition::Layered,
    },
    DesignStyle {
        key: "minimalist",
        name: "Minimalist",
        prompt: "minimalist interior, white and grey, hidden storage, few objects, crisp shadows",
        negative_prompt: "clutter, pattern, ornament",
        palette: &["#fafafa", "#dcdcdc", "#9e9e9e", "#424242", "#e0d7c6"],
        materials: &["plaster", "white oak", "glass"],
        composition: Composition::Airy,
    },
    DesignStyle {
        key: "coastal",
        name: "Coastal",
        prompt: "coastal interior, whitewashed wood, sea blues, sand tones, linen, airy light",
        negative_prompt: "dark, heavy, industrial",
        palette: &["#f7f6f2", "#e2d3b5", "#7fb2c9", "#2e5e7e", "#c9d6c3"],
        materials: &["whitewashed wood", "linen", "rope", "seagrass"],
        composition: Composition::Airy,
    },
    DesignStyle {
        key: "farmhouse",
        name: "Farmhouse",
        prompt: "modern farmhouse interior, shiplap walls, reclaimed wood, black hardware, cosy textiles",
        negative_prompt: "glossy, futuristic, neon",
        palette: &["#f1ede4", "#a67b5b", "#5c4033", "#2f2f2f", "#8f9779"],
        materials: &["reclaimed wood", "shiplap", "iron", "cotton"],
        composition: Composition::Layered,
    },
    DesignStyle {
        key: "art_deco",
        name: "Art deco",
        prompt: "art deco interior, geometric patterns, velvet, brass, emerald and gold, glamorous lighting",
        negative_prompt: "rustic, plain, shabby",
        palette: &["#1f3b2d", "#0b0b0b", "#c9a227", "#7a1f3d", "#e8dcc2"],
        materials: &["velvet", "brass", "marble", "lacquer"],
        composition: Composition::Grid,
    },
    DesignStyle {
        key: "organic_modern",
        name: "Organic modern",
        prompt: "organic modern interior, curved furniture, limewash walls, travertine, boucle, soft neutrals",
        negative_prompt: "sharp, cold, cluttered",
        palette: &["#efe7dd", "#cbb8a0", "#a68a6d", "#6b705c", "#3f4238"],
        materials: &["travertine", "boucle", "limewash", "oak"],
        composition: Composition::Organic,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_named_as_a_designer_would() {
        assert_eq!(colour_name("#9AA58B"), "sage green");
        assert_eq!(colour_name("#EBE5DC"), "warm white");
        assert_eq!(colour_name("#1e2b45"), "navy blue");
        assert_eq!(colour_name("#c86a3f"), "terracotta");
        assert_eq!(colour_name("#000000"), "black");
        assert_eq!(colour_name("#6F5E4C"), "mocha brown", "a brown, not an olive");
        let words = palette_words(&["#ebe5dc".into(), "#f4efe5".into(), "#9aa58b".into(), "#3d3b36".into()]);
        assert_eq!(words, "warm white, sage green, graphite", "each name once, in order");
        // The taxonomy's own palettes read right, colour by colour.
        let words = |key: &str| {
            let style = design_style(key).unwrap();
            palette_words(&style.palette.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(words("japandi"), "warm white, camel, mocha brown, graphite, sage green");
        assert_eq!(words("art_deco"), "deep green, black, mustard yellow, burgundy, linen");
        assert_eq!(words("coastal"), "warm white, linen, sky blue, denim blue, pale sage");
    }

    #[test]
    fn keys_are_unique_and_palettes_are_colours() {
        for keys in [
            PRD_SECTIONS.iter().map(|s| s.key).collect::<Vec<_>>(),
            ROOM_TYPES.iter().map(|s| s.key).collect(),
            DESIGN_STYLES.iter().map(|s| s.key).collect(),
        ] {
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), keys.len(), "{keys:?}");
        }
        for style in DESIGN_STYLES {
            assert!(style.palette.len() >= 5, "{}", style.key);
            for hex in style.palette {
                assert!(hex.len() == 7 && u32::from_str_radix(&hex[1..], 16).is_ok(), "{}: {hex}", style.key);
            }
        }
        assert_eq!(rgb("#c9a227"), [0xc9, 0xa2, 0x27]);
    }

    #[test]
    fn a_style_is_found_in_free_text() {
        assert_eq!(style_in("A calm Japandi bedroom").map(|s| s.key), Some("japandi"));
        assert_eq!(style_in("mid-century modern living room").map(|s| s.key), Some("mid_century_modern"));
        assert_eq!(style_in("a room").map(|s| s.key), None);
    }
}
