"""Cuts Noto Sans CJK SC (Debian's fonts-noto-cjk 1:20220127) to GB2312 + ASCII + CJK
punctuation, as WOFF2: the Chinese the report shows, without a system CJK font."""
import sys
from fontTools.ttLib import TTCollection
from fontTools import subset

ttc, out = sys.argv[1], sys.argv[2]
collection = TTCollection(ttc)
index = next(i for i, f in enumerate(collection.fonts)
             if f["name"].getDebugName(1) == "Noto Sans CJK SC")
chars = set(range(0x20, 0x7F)) | set(range(0x3000, 0x3040)) | set(range(0xFF01, 0xFF5F))
chars |= {0x00B7, 0x00D7, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2026, 0x2030, 0x2103, 0x2192, 0x2212, 0x25B2, 0x25BC}
for hi in range(0xA1, 0xF8):
    for lo in range(0xA1, 0xFF):
        try:
            chars.add(ord(bytes([hi, lo]).decode("gb2312")))
        except UnicodeDecodeError:
            pass
options = subset.Options()
options.flavor = "woff2"
options.name_IDs = ["*"]
options.notdef_outline = True
options.hinting = False
options.layout_features = []
options.font_number = index
font = subset.load_font(ttc, options)
subsetter = subset.Subsetter(options)
subsetter.populate(unicodes=sorted(chars))
subsetter.subset(font)
subset.save_font(font, out, options)
print(index, len(chars))
