//! Chinese without a system CJK font: the page embeds the glyphs it uses.
//!
//! The report ships a GB2312 subset of Noto Sans CJK SC (`assets/`, OFL). Each page gets
//! an `@font-face` rule whose font holds only that page's non-ASCII characters (a few
//! hundred glyphs, tens of kilobytes), cut with `allsorts`, so the page stays one file and
//! renders the same on a headless server printing to PDF as on a desktop. The family comes
//! after the readers' own CJK fonts, so where those exist they are used.

use allsorts::binary::read::ReadScope;
use allsorts::font::{Font, MatchingPresentation};
use allsorts::font_data::FontData;
use allsorts::subset::{CmapTarget, SubsetProfile, subset};
use base64::Engine as _;

/// Noto Sans CJK SC cut to GB2312 (see `assets/README.md`).
const FONT: &[u8] = include_bytes!("../assets/NotoSansSC-GB2312.woff2");

/// The CSS family name of the embedded font.
pub const FAMILY: &str = "KefuCJK";

/// The `@font-face` rule for the non-ASCII characters of `text` that the embedded font
/// has, or `None` when the text has no Chinese (an English page). Errors in the font are
/// logged and give `None`: the page then falls back to the reader's fonts.
pub fn face_for(text: &str) -> Option<String> {
    match subset_for(text) {
        Ok(Some(bytes)) => Some(format!(
            "@font-face {{ font-family: \"{FAMILY}\"; font-style: normal; font-weight: 400; \
             font-display: block; src: url(data:font/otf;base64,{}) format(\"opentype\"); }}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("the report's CJK font could not be embedded: {e}");
            None
        }
    }
}

/// The embedded font cut to the glyphs of `text`'s non-ASCII characters (OpenType).
fn subset_for(text: &str) -> Result<Option<Vec<u8>>, String> {
    let mut wanted: Vec<char> = text.chars().filter(|c| !c.is_ascii()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    // A page without Chinese (English, with a "·" or "—") needs no font.
    if !wanted.iter().any(|&c| is_cjk(c)) {
        return Ok(None);
    }
    let data = ReadScope::new(FONT)
        .read::<FontData<'_>>()
        .map_err(|e| e.to_string())?;
    let provider = data.table_provider(0).map_err(|e| e.to_string())?;
    let mut font = Font::new(provider).map_err(|e| e.to_string())?;
    // Glyph 0 (.notdef) first, as every font needs it.
    let mut glyphs: Vec<u16> = vec![0];
    glyphs.extend(wanted.iter().filter_map(|&c| {
        let (glyph, _) = font.lookup_glyph_index(c, MatchingPresentation::NotRequired, None);
        (glyph != 0).then_some(glyph)
    }));
    glyphs[1..].sort_unstable();
    glyphs.dedup();
    if glyphs.len() == 1 {
        return Ok(None);
    }
    let bytes = subset(
        &font.font_table_provider,
        &glyphs,
        &SubsetProfile::Minimal,
        CmapTarget::Unicode,
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

/// CJK ideographs, punctuation and fullwidth forms: what a Latin system font lacks.
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_gets_only_its_own_glyphs() {
        let small = subset_for("客服月度报告").unwrap().unwrap();
        let larger = subset_for("客服月度报告：投诉量同比下降，回访满意度上升。")
            .unwrap()
            .unwrap();
        // A few glyphs are a few kilobytes, not the 1.1 MB of the whole subset.
        assert!(small.len() < 40_000, "{}", small.len());
        assert!(larger.len() > small.len());
        // The cut font maps the characters it was cut for.
        let data = ReadScope::new(&small).read::<FontData<'_>>().unwrap();
        let mut font = Font::new(data.table_provider(0).unwrap()).unwrap();
        for c in "客服报告".chars() {
            let (glyph, _) = font.lookup_glyph_index(c, MatchingPresentation::NotRequired, None);
            assert_ne!(glyph, 0, "{c} is missing");
        }
        let (glyph, _) = font.lookup_glyph_index('满', MatchingPresentation::NotRequired, None);
        assert_eq!(glyph, 0, "a character the page does not use");
    }

    #[test]
    fn english_needs_no_font() {
        assert!(face_for("Customer service report, February 2026 · 12.5%").is_none());
        let face = face_for("北京 92.5%").unwrap();
        assert!(face.starts_with("@font-face") && face.contains("base64,"));
    }
}
