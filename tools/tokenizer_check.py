#!/usr/bin/env python3
"""
tokenizer_check.py - compares this project's tokenizer with the Python
reference (open_clip's tokenize(): ftfy, regex, BPE, context length 77) on a
large generated corpus of varied strings, and reports the mismatches.

The reference is not part of this repository: pass the folder that holds
open_clip's tokenizer.py and the folder that holds the ftfy package (for
example extracted copies of their repositories).  Needs the Python packages
regex, wcwidth and torch.

usage: python3 tools/tokenizer_check.py --open-clip DIR --ftfy DIR
           [--vocab FILE] [--seed N] [--scale K] [--sweep] [--show N]
  --open-clip DIR  folder with tokenizer.py (e.g. open_clip/src/open_clip)
  --ftfy DIR       folder with the ftfy package (e.g. a python-ftfy checkout)
  --vocab FILE     BPE merges (default: DIR/bpe_simple_vocab_16e6.txt.gz)
  --scale K        corpus size multiplier (default 1: about 30,000 strings)
  --sweep          also every code point alone and inside a word
  --show N         print the first N mismatches (default 20)
Builds tools/tokenizer_check.c against build/libmobileclip.a (run `make`).
"""
import argparse
import importlib.util
import json
import os
import random
import struct
import subprocess
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------

WORDS = """a an the photo picture image drawing painting sketch of with on in at by for from
to and or but is are was were be been being has have had do does did not no yes cat dog
bird horse car truck bus train plane boat man woman child children people person group
red green blue yellow black white orange purple pink brown gray grey small large big tiny
huge old new young beautiful ugly happy sad running walking sitting standing eating
drinking playing sleeping street road city beach mountain forest river lake sky sunset
sunrise night day morning evening kitchen table chair sofa bed window door house building
tower bridge park garden field snow rain fog cloud clouds water ocean wave waves flower
flowers tree trees grass rock stone sand food pizza sandwich cake coffee tea cup plate
bowl knife fork spoon phone computer laptop keyboard screen book books paper sign text
close-up closeup view aerial portrait landscape macro blurry bright dark colorful vintage
retro modern cartoon anime 3d render rendering illustration watercolor oil canvas
photograph photography camera lens shot wide-angle telephoto high-resolution hd 4k 8k
tench goldfish shark hen ostrich jellyfish koala snail lobster flamingo pelican
antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis
supercalifragilisticexpialidocious floccinaucinihilipilification hippopotomonstrosesquippedaliophobia
internationalization electroencephalographically counterrevolutionaries
unbelievably misunderstanding photosynthesis thermodynamics""".split()

CONTRACTIONS = ["it's", "don't", "they're", "we've", "i'm", "you'll", "he'd", "can't",
                "won't", "isn't", "she's", "that's", "we'll", "i'd", "you're", "they've",
                "y'all", "o'clock", "rock'n'roll", "'tis", "'twas", "ma'am", "'s", "'t",
                "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'mM", "'LL", "'D",
                "cat's", "dogs'", "'quoted'", "it’s", "don’t", "you‘re", "it`s", "it´s"]

PUNCT = list(".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"'") + ["...", "--", "—", "–", "…", "!!", "?!",
                                                    "«", "»", "“", "”", "‘", "’", "„", "¿", "¡",
                                                    "·", "•", "©", "®", "™", "°", "±", "×", "÷",
                                                    "€", "£", "¥", "¢", "§", "¶", "†", "‡"]

SCRIPTS = {
    "cjk": [(0x4E00, 0x9FFF), (0x3400, 0x4DBF)],
    "kana": [(0x3041, 0x3096), (0x30A1, 0x30FA), (0x30FC, 0x30FE)],
    "hangul": [(0xAC00, 0xD7A3)],
    "arabic": [(0x0621, 0x064A), (0x064B, 0x0652), (0x0660, 0x0669), (0x06F0, 0x06F9)],
    "hebrew": [(0x05D0, 0x05EA), (0x05B0, 0x05BC)],
    "devanagari": [(0x0900, 0x097F)],
    "bengali": [(0x0980, 0x09FE)],
    "tamil": [(0x0B82, 0x0BFA)],
    "thai": [(0x0E01, 0x0E5B)],
    "cyrillic": [(0x0400, 0x04FF)],
    "greek": [(0x0370, 0x03FF), (0x1F00, 0x1FFE)],
    "armenian": [(0x0531, 0x0587)],
    "georgian": [(0x10A0, 0x10FF), (0x1C90, 0x1CBF)],
    "ethiopic": [(0x1200, 0x137C)],
    "latin_ext": [(0x00C0, 0x024F), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF)],
    "ipa": [(0x0250, 0x02FF)],
    "cherokee": [(0x13A0, 0x13FD), (0xAB70, 0xABBF)],
    "math_alnum": [(0x1D400, 0x1D7FF)],
    "fullwidth": [(0xFF01, 0xFF5E), (0xFF61, 0xFF9F)],
    "letterlike": [(0x2100, 0x214F), (0x2150, 0x218B)],
    "enclosed": [(0x2460, 0x24FF), (0x3200, 0x32FF), (0x1F100, 0x1F1FF)],
    "symbols": [(0x2190, 0x23FF), (0x2500, 0x27BF), (0x2900, 0x2BFF)],
    "combining": [(0x0300, 0x036F), (0x1AB0, 0x1ACE), (0x1DC0, 0x1DFF), (0x20D0, 0x20F0), (0xFE20, 0xFE2F)],
    "emoji": [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
              (0x2600, 0x26FF), (0x1FA70, 0x1FAFF)],
    "newer": [(0x10570, 0x105BF), (0xA7C0, 0xA7D9), (0x2C2F, 0x2C2F), (0x2C5F, 0x2C5F),
              (0x1E290, 0x1E2AE), (0x11F00, 0x11F59), (0x1DF00, 0x1DF2A), (0x1E030, 0x1E08F)],
    "misc_smp": [(0x10000, 0x1FFFF)],
    "any": [(0x0, 0x2FFFF), (0xE0000, 0xE01EF)],
}

SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f",
          "\x85", "\xa0", "\u1680", "\u2000", "\u2002", "\u2003", "\u2009", "\u200a", "\u2028",
          "\u2029", "\u202f", "\u205f", "\u3000", "\u200b", "\u180e", "\ufeff", " \t \n "]

ODD = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x80", "\x9f", "\xad", "\u200c", "\u200d", "\u200e",
       "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\u2060", "\ufffd", "\ufffe", "\uffff",
       "\ue000", "\U000f0000", "\U0010ffff", "\ufe0f", "\ufe0e", "\U000e0041", "\u034f", "\u0345",
       "\u0130", "\u0131", "\u017f", "\u1e9e", "\u00df", "\u212a", "\u212b", "\u03a3", "\u01c5",
       "\u2126", "\ufb01", "\ufb00", "\ufb06", "\u0149", "\u1f88", "\u0587"]

ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#39;", "&#x27;", "&nbsp;", "&amp;amp;",
            "&amp;lt;", "&copy", "&copy;", "&eacute;", "&Eacute;", "&hellip;", "&mdash;", "&#8217;",
            "&#x2019;", "&#0;", "&#128;", "&#150;", "&#x80;", "&#xD800;", "&#1114112;", "&#99999999;",
            "&notanentity;", "&amp", "&lt", "&#65", "&#x41", "&AMP;", "&NotEqualTilde;", "&notin;",
            "&not", "&notit;", "&ThickSpace;", "&NewLine;", "&Tab;", "&#9;", "&#10;", "&#13;",
            "&#160;", "&#x1F600;", "&#128512;", "&#x110000;", "&#-1;", "&#;", "&;", "&&", "&#x;",
            "&amp;#39;", "&amp;quot;", "&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b>", "&nbsp;&nbsp;"]

ENCODINGS = ["cp1252", "latin-1", "cp1251", "cp1250", "mac_roman", "cp437", "iso-8859-2", "cp1253",
             "cp1254", "cp1257", "cp850", "koi8-r"]

TLDS = [".com", ".org", ".net", ".io", ".co.uk", ".de", ".jp", ".ai"]


def rand_cp(rng, script):
    while True:
        lo, hi = rng.choice(SCRIPTS[script])
        c = rng.randint(lo, hi)
        if 0xD800 <= c <= 0xDFFF:
            continue
        return chr(c)


def rand_case(rng, s):
    r = rng.random()
    if r < 0.5:
        return s
    if r < 0.65:
        return s.upper()
    if r < 0.8:
        return s.title()
    if r < 0.9:
        return s.capitalize()
    return "".join(ch.upper() if rng.random() < 0.5 else ch for ch in s)


def number(rng):
    k = rng.randint(0, 6)
    if k == 0:
        return str(rng.randint(0, 100))
    if k == 1:
        return str(rng.randint(0, 10 ** rng.randint(1, 15)))
    if k == 2:
        return "%.*f" % (rng.randint(1, 4), rng.uniform(-1000, 1000))
    if k == 3:
        return "%d,%03d" % (rng.randint(1, 999), rng.randint(0, 999))
    if k == 4:
        return "%d%%" % rng.randint(0, 100)
    if k == 5:
        return "%d:%02d" % (rng.randint(0, 23), rng.randint(0, 59))
    return "%d/%d/%d" % (rng.randint(1, 12), rng.randint(1, 31), rng.randint(1900, 2030))


def caption(rng, n_min=3, n_max=16):
    parts = []
    for _ in range(rng.randint(n_min, n_max)):
        r = rng.random()
        if r < 0.65:
            parts.append(rand_case(rng, rng.choice(WORDS)))
        elif r < 0.75:
            parts.append(rand_case(rng, rng.choice(CONTRACTIONS)))
        elif r < 0.85:
            parts.append(number(rng))
        else:
            w = rng.choice(WORDS) if rng.random() < 0.5 else ""
            parts.append(w + rng.choice(PUNCT))
    s = " ".join(parts)
    if rng.random() < 0.5:
        s = s[:1].upper() + s[1:] + rng.choice([".", "!", "?", "", "...", " :)", "!!!"])
    return s


def url(rng):
    host = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(rng.randint(2, 15)))
    path = "/".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4)))
    s = rng.choice(["http://", "https://", "www.", "ftp://", ""]) + host + rng.choice(TLDS)
    if path:
        s += "/" + path
    if rng.random() < 0.4:
        s += "?q=%s&id=%d&amp;x=%%20y" % (rng.choice(WORDS), rng.randint(0, 99999))
    if rng.random() < 0.2:
        s += "#" + rng.choice(WORDS)
    r = rng.random()
    if r < 0.2:
        s = "%s.%s@%s%s" % (rng.choice(WORDS), rng.choice(WORDS), host, rng.choice(TLDS))
    elif r < 0.3:
        s = "@" + rng.choice(WORDS) + "_" + str(rng.randint(0, 999)) + " #" + rng.choice(WORDS) + rng.choice(WORDS)
    elif r < 0.4:
        s = rng.choice(["C:\\Users\\", "/home/", "~/"]) + "/".join(rng.choice(WORDS) for _ in range(3)) + ".jpg"
    if rng.random() < 0.5:
        s = caption(rng, 1, 6) + " " + s + " " + caption(rng, 0, 4)
    return s


def script_text(rng, script, n_min=1, n_max=12):
    words = []
    for _ in range(rng.randint(n_min, n_max)):
        words.append("".join(rand_cp(rng, script) for _ in range(rng.randint(1, 8))))
    return rng.choice([" ", "", "、", "，", ". "]).join(words)


def emoji_text(rng):
    out = []
    for _ in range(rng.randint(1, 10)):
        r = rng.random()
        e = rand_cp(rng, "emoji")
        if r < 0.2:
            e += chr(rng.randint(0x1F3FB, 0x1F3FF))
        elif r < 0.35:
            e += "\u200d" + rand_cp(rng, "emoji")
        elif r < 0.45:
            e = chr(0x1F1E6 + rng.randint(0, 25)) + chr(0x1F1E6 + rng.randint(0, 25))
        elif r < 0.55:
            e += "\ufe0f"
        elif r < 0.6:
            e = rng.choice("0123456789#*") + "\ufe0f\u20e3"
        elif r < 0.65:
            e = "\U0001F3F4" + "".join(chr(0xE0061 + rng.randint(0, 25)) for _ in range(5)) + "\U000E007F"
        out.append(e)
    sep = rng.choice(["", " ", " " + rng.choice(WORDS) + " "])
    s = sep.join(out)
    if rng.random() < 0.6:
        s = caption(rng, 1, 8) + rng.choice([" ", ""]) + s
    return s


def combining_text(rng):
    out = []
    for _ in range(rng.randint(1, 10)):
        base = rng.choice([rng.choice("aeiouAEIOUnNcCsSzZyY"), rand_cp(rng, "greek"), rand_cp(rng, "cyrillic"),
                           rand_cp(rng, "hebrew"), rand_cp(rng, "arabic"), rand_cp(rng, "devanagari"),
                           rand_cp(rng, "hangul"), " ", "'", "1", rng.choice(PUNCT)])
        marks = "".join(rand_cp(rng, "combining") if rng.random() < 0.8 else "\u0345"
                        for _ in range(rng.randint(0, 4)))
        out.append(base + marks)
    s = "".join(out)
    if rng.random() < 0.5:
        s = unicodedata.normalize(rng.choice(["NFD", "NFKD", "NFC", "NFKC"]), s)
    return s


def long_word(rng):
    r = rng.random()
    if r < 0.3:
        return "".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
    if r < 0.5:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(10, 120)))
    if r < 0.6:
        return rng.choice("abcdefghijklmnopqrstuvwxyz") * rng.randint(2, 200)
    if r < 0.7:
        return (rng.choice(WORDS) * rng.randint(2, 30))
    if r < 0.8:
        return "".join(rand_cp(rng, "latin_ext") for _ in range(rng.randint(5, 60)))
    if r < 0.9:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(5, 80)))
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 100)))


def whitespace_text(rng):
    parts = []
    for _ in range(rng.randint(0, 8)):
        parts.append(rng.choice(SPACES) if rng.random() < 0.5 else rng.choice(WORDS))
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def entity_text(rng):
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.5:
            parts.append(rng.choice(ENTITIES))
        elif r < 0.7:
            parts.append(rng.choice(WORDS) + rng.choice(ENTITIES) + rng.choice(WORDS))
        else:
            parts.append(rng.choice(WORDS))
    return rng.choice([" ", ""]).join(parts)


def mojibake(rng):
    src = rng.choice([caption(rng, 2, 8), script_text(rng, rng.choice(["latin_ext", "cyrillic", "greek", "cjk",
                                                                       "kana", "hebrew", "arabic"]), 1, 4),
                      emoji_text(rng), "café résumé naïve", "“quoted” – dash … ellipsis", "ñandú über Straße",
                      "Ça va? Déjà vu. L’été", "Москва", "日本語のテキスト", "😀 emoji"])
    # add accented letters so that there is something to break
    if rng.random() < 0.7:
        src += " " + "".join(rng.choice("éèàçñüößâêîôûëïÿœæåø€“”‘’–—…•™©") for _ in range(rng.randint(1, 6)))
    data = src.encode("utf-8")
    for _ in range(rng.choice([1, 1, 1, 2])):
        enc = rng.choice(ENCODINGS)
        try:
            s = data.decode(enc, errors=rng.choice(["replace", "ignore", "strict"]))
        except UnicodeDecodeError:
            s = data.decode("latin-1")
        data = s.encode("utf-8")
    s = data.decode("utf-8")
    if rng.random() < 0.3:
        s = caption(rng, 1, 5) + " " + s
    return s


def special_text(rng):
    toks = ["<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "<End_Of_Text>", "<start_of_text",
            "start_of_text>", "<end_of_text><end_of_text>", "<|endoftext|>", "<startoftext>"]
    return rng.choice([" ", ""]).join(rng.choice(toks + WORDS) for _ in range(rng.randint(1, 6)))


def odd_text(rng):
    parts = []
    for _ in range(rng.randint(1, 10)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(ODD))
        elif r < 0.6:
            parts.append("'" + rng.choice(ODD))
        elif r < 0.9:
            parts.append(rand_case(rng, rng.choice(WORDS)))
        else:
            parts.append(rng.choice(SPACES))
    return rng.choice(["", " "]).join(parts)


def mixed_text(rng):
    gens = [lambda: caption(rng, 1, 5), lambda: script_text(rng, rng.choice(list(SCRIPTS)), 1, 4),
            lambda: emoji_text(rng), lambda: combining_text(rng), lambda: long_word(rng),
            lambda: rng.choice(SPACES), lambda: entity_text(rng), lambda: odd_text(rng), lambda: number(rng),
            lambda: rand_case(rng, rng.choice(CONTRACTIONS))]
    return rng.choice(["", " "]).join(rng.choice(gens)() for _ in range(rng.randint(2, 8)))


def random_cps(rng):
    return "".join(rand_cp(rng, rng.choice(["any", "any", "misc_smp", "newer"])) for _ in range(rng.randint(1, 30)))


def long_text(rng):
    r = rng.random()
    if r < 0.5:
        return " ".join(caption(rng, 10, 30) for _ in range(rng.randint(2, 8)))
    if r < 0.7:
        return mixed_text(rng) * rng.randint(3, 20)
    if r < 0.85:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(70, 300)))
    # right at the boundary: 74..78 tokens of one-token words
    return " ".join(["cat"] * rng.randint(73, 78)) + rng.choice(["", " dog", " it's", " 123", " !!"])


def fixed_strings():
    out = ["", " ", "  ", "\n", "\t\n\r ", "\u3000", "a", "A", "'", "''", "'s", "'S", "''s", "'ſ", "'K",
           "it's", "IT'S", "It'S", "don'T", "we'Re", "we'RE", "I'M", "you'LL", "he'D", "they'VE",
           "1", "12", "1234567890", "½", "²³", "Ⅻ", "٣", "߃", "𝟙", "①", "x²", "3.14", "-1", "1e10",
           "&", "&amp;", "&amp;amp;amp;", "&#39;s", "it&#39;s", "&lt;start_of_text&gt;", "<start_of_text>",
           "<end_of_text>", "a<end_of_text>b", "Σ", "ΣΑΣ", "ΟΔΥΣΣΕΥΣ", "Σ.", "aΣ", "aΣb", "aΣ'", "a'Σ",
           "İstanbul", "İ", "ẞ", "ß", "ǅ", "ǈ", "ǲ", "Ω", "K", "Å", "ﬁ", "ﬀ", "ﬆ", "ŉ", "ᾈ", "ͅ", "ᾳ",
           "ǰ", "Ⓐ", "ⓐ", "🅰", "Ａ", "ａ", "ｶ", "ﾞ", "㈱", "㎏", "…", "\x00", "a\x00b", "\ufeffa",
           "a\u200bb", "a\u00adb", "\ufffd", "Ã©", "Ã¢â‚¬â„¢", "â€œhelloâ€\x9d", "cafÃ©", "Ã\xa0",
           "ðŸ˜€", "Ð¼Ð¾Ñ\x81ÐºÐ²Ð°", "l'été", "L’ÉTÉ", "naïve", "nai\u0308ve", "Ａｐｐｌｅ", "ＡＰＰＬＥ's"]
    out.append(" ".join(["a"] * 75))
    out.append(" ".join(["a"] * 76))
    out.append(" ".join(["a"] * 77))
    out.append("a" * 1000)
    out.append("🤷🏽‍♀️" * 40)
    return out


GENERATORS = [
    ("caption", caption, 7000),
    ("url", url, 1500),
    ("emoji", emoji_text, 1500),
    ("script", None, 4200),
    ("combining", combining_text, 1500),
    ("long_word", long_word, 2000),
    ("whitespace", whitespace_text, 1000),
    ("entity", entity_text, 1500),
    ("mojibake", mojibake, 2500),
    ("special", special_text, 300),
    ("odd", odd_text, 1500),
    ("mixed", mixed_text, 2500),
    ("random_cps", random_cps, 1500),
    ("long", long_text, 1000),
]


def make_corpus(seed, scale):
    rng = random.Random(seed)
    corpus = [("fixed", s) for s in fixed_strings()]
    scripts = [k for k in SCRIPTS if k not in ("any", "misc_smp")]
    for name, fn, n in GENERATORS:
        for _ in range(int(n * scale)):
            if fn is None:
                s = script_text(rng, rng.choice(scripts))
                if rng.random() < 0.3:
                    s = caption(rng, 1, 5) + " " + s
                corpus.append((name, s))
            else:
                corpus.append((name, fn(rng)))
    return corpus


def sweep_corpus():
    out = []
    planes = list(range(0x30000)) + list(range(0xE0000, 0xE1000)) + list(range(0x30000, 0x110000, 4099))
    for c in planes:
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        # alone, inside a word, after an apostrophe (as a contraction letter), repeated
        out.append(("sweep", "%s x%sy '%s '%se '%sl 'r%s 'l%s %s%s" % ((ch,) * 9)))
    return out


def version_dependent_chars():
    """The characters whose Unicode data differ between the reference's tables
    (Python's unicodedata, the regex module's newer tables) and utf8proc's:
    unassigned for Python, or assigned for Python but not for utf8proc."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_category.argtypes = [ctypes.c_int32]
    lib.utf8proc_category.restype = ctypes.c_int
    out = set()
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        if unicodedata.category(chr(c)) == "Cn" or lib.utf8proc_category(c) == 0:
            out.add(chr(c))
    return out


# ---------------------------------------------------------------------------
# Running both sides
# ---------------------------------------------------------------------------

def utf8proc_version():
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    return lib.utf8proc_unicode_version().decode()


def load_reference(open_clip_dir, ftfy_dir):
    sys.path.insert(0, ftfy_dir)
    spec = importlib.util.spec_from_file_location("oc_tokenizer", os.path.join(open_clip_dir, "tokenizer.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference_ids(mod, texts, ctx):
    out = []
    for i in range(0, len(texts), 512):
        out.extend(mod.tokenize(texts[i:i + 512], context_length=ctx).tolist())
    return out


def build_harness():
    exe = os.path.join(ROOT, "build", "tokenizer_check")
    src = os.path.join(ROOT, "tools", "tokenizer_check.c")
    lib = os.path.join(ROOT, "build", "libmobileclip.a")
    libs = subprocess.run(["pkg-config", "--libs", "libpng", "libjpeg", "zlib", "libutf8proc", "libpcre2-8",
                           "libwebp", "libwebpdemux", "libcurl"], capture_output=True, text=True,
                          check=True).stdout.split()
    subprocess.run(["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-I" + os.path.join(ROOT, "include"), src,
                    lib, *libs, "-lm", "-lpthread", "-fopenmp", "-o", exe], check=True)
    return exe


def our_ids(exe, vocab, texts, ctx):
    blob = bytearray()
    for t in texts:
        b = t.encode("utf-8")
        blob += struct.pack("<I", len(b)) + b
    res = subprocess.run([exe, vocab, str(ctx)], input=bytes(blob), capture_output=True, check=True)
    lines = res.stdout.decode().split("\n")[:len(texts)]
    return [l if l.startswith("ERR") else [int(x) for x in l.split()] for l in lines]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--open-clip", required=True)
    ap.add_argument("--ftfy", required=True)
    ap.add_argument("--vocab")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--context-length", type=int, default=77)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--show", type=int, default=20)
    ap.add_argument("--dump", help="write the mismatches as JSON lines to this file")
    args = ap.parse_args()
    vocab = args.vocab or os.path.join(args.open_clip, "bpe_simple_vocab_16e6.txt.gz")
    mod = load_reference(args.open_clip, args.ftfy)
    exe = build_harness()
    corpus = make_corpus(args.seed, args.scale)
    if args.sweep:
        corpus += sweep_corpus()
    texts = [t for _, t in corpus]
    want = reference_ids(mod, texts, args.context_length)
    got = our_ids(exe, vocab, texts, args.context_length)
    counts, bad = {}, {}
    mism = []
    for (kind, t), w, g in zip(corpus, want, got):
        counts[kind] = counts.get(kind, 0) + 1
        if w != g:
            bad[kind] = bad.get(kind, 0) + 1
            mism.append((kind, t, w, g))
    print("unicode: python %s, ftfy %s" % (unicodedata.unidata_version, sys.modules["ftfy"].__version__))
    # mismatches in texts holding characters that one side's tables do not know
    vchars = version_dependent_chars() if mism else set()
    vmism = [m for m in mism if any(ch in vchars for ch in m[1])]
    other = [m for m in mism if not any(ch in vchars for ch in m[1])]
    vbad = {}
    for m in vmism:
        vbad[m[0]] = vbad.get(m[0], 0) + 1
    print("%-12s %8s %10s %16s" % ("kind", "strings", "mismatches", "(unicode version)"))
    for kind in counts:
        print("%-12s %8d %10d %16d" % (kind, counts[kind], bad.get(kind, 0), vbad.get(kind, 0)))
    print("%-12s %8d %10d %16d" % ("total", len(corpus), len(mism), len(vmism)))
    if vmism:
        # the same texts without those characters must agree
        stripped = ["".join(ch for ch in m[1] if ch not in vchars) for m in vmism]
        w2 = reference_ids(mod, stripped, args.context_length)
        g2 = our_ids(exe, vocab, stripped, args.context_length)
        n2 = sum(1 for a, b in zip(w2, g2) if a != b)
        print("the %d texts with characters unassigned in Python %s or in utf8proc %s: "
              "%d mismatches once those characters are removed"
              % (len(vmism), unicodedata.unidata_version, utf8proc_version(), n2))
    for kind, t, w, g in other[:args.show]:
        print("--- %s: %r" % (kind, t))
        print("  reference: %s" % w[:w.index(49407) + 1 if 49407 in w else None])
        print("  ours:      %s" % (g if isinstance(g, str) else g[:g.index(49407) + 1 if 49407 in g else None]))
    if args.dump:
        with open(args.dump, "w") as f:
            for kind, t, w, g in mism:
                f.write(json.dumps({"kind": kind, "text": t, "reference": w, "ours": g}) + "\n")
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())
