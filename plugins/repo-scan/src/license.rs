//! License detection from the head of a LICENSE file.
//!
//! Recognises the licenses services actually ship under by their tell-tale phrases and returns a
//! SPDX identifier; an explicit `SPDX-License-Identifier:` line wins. It reads only the text it
//! is given and never guesses: an unrecognised text is `"unknown"`.

/// File names checked, in order, at the repository root.
pub(crate) const LICENSE_FILES: &[&str] = &[
    "LICENSE",
    "LICENSE.md",
    "LICENSE.txt",
    "LICENCE",
    "LICENCE.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "COPYING",
    "COPYING.md",
];

/// How much of the file is read: every recognised phrase sits in the first lines.
pub(crate) const HEAD_BYTES: usize = 4096;

/// The SPDX-ish identifier of the license whose text starts with `head`.
pub(crate) fn detect(head: &str) -> String {
    for line in head.lines() {
        if let Some((_, id)) = line.split_once("SPDX-License-Identifier:") {
            let id = id.trim().trim_end_matches("*/").trim();
            if !id.is_empty() {
                return id.to_string();
            }
        }
    }
    let text = head
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let has = |phrase: &str| text.contains(phrase);
    let id = if has("apache license") && has("version 2.0") {
        "Apache-2.0"
    } else if has("gnu affero general public license") {
        "AGPL-3.0"
    } else if has("gnu lesser general public license") {
        if has("version 2.1") {
            "LGPL-2.1"
        } else {
            "LGPL-3.0"
        }
    } else if has("gnu general public license") {
        if has("version 2") && !has("version 3") {
            "GPL-2.0"
        } else {
            "GPL-3.0"
        }
    } else if has("mozilla public license") && has("2.0") {
        "MPL-2.0"
    } else if has("mit license") || has("permission is hereby granted, free of charge") {
        "MIT"
    } else if has("isc license") || has("permission to use, copy, modify, and/or distribute") {
        "ISC"
    } else if has("boost software license") {
        "BSL-1.0"
    } else if has("this is free and unencumbered software") {
        "Unlicense"
    } else if has("redistribution and use in source and binary forms") {
        if has("neither the name") || has("3-clause") {
            "BSD-3-Clause"
        } else {
            "BSD-2-Clause"
        }
    } else if has("creative commons") && has("cc0") {
        "CC0-1.0"
    } else {
        "unknown"
    };
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_licenses() {
        let cases = [
            (
                "                                 Apache License\n   Version 2.0, January 2004",
                "Apache-2.0",
            ),
            ("MIT License\n\nCopyright (c) 2024 Acme", "MIT"),
            (
                "Copyright 2020\n\nPermission is hereby granted, free of charge, to any person",
                "MIT",
            ),
            (
                "GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007",
                "GPL-3.0",
            ),
            (
                "GNU GENERAL PUBLIC LICENSE\n Version 2, June 1991",
                "GPL-2.0",
            ),
            (
                "GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999",
                "LGPL-2.1",
            ),
            (
                "Mozilla Public License Version 2.0\n==================",
                "MPL-2.0",
            ),
            (
                "Redistribution and use in source and binary forms ... Neither the name of",
                "BSD-3-Clause",
            ),
            (
                "Redistribution and use in source and binary forms, with or without",
                "BSD-2-Clause",
            ),
            (
                "This is free and unencumbered software released into the public domain.",
                "Unlicense",
            ),
            (
                "// SPDX-License-Identifier: MIT OR Apache-2.0\nwhatever",
                "MIT OR Apache-2.0",
            ),
            ("All rights reserved. Do not copy.", "unknown"),
        ];
        for (text, expected) in cases {
            assert_eq!(detect(text), expected, "{text}");
        }
    }
}
