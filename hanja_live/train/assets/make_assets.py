"""Rebuild the bundled ink sources from locally unpacked upstream packages.

Run once by a maintainer (needs fontTools and the Debian font packages); generation never runs
it and never needs network. Every source is cut down to the characters in
``hanja_live.train.charsets.ALL_CHARS`` and lands beside its licence text.

    python -m hanja_live.train.assets.make_assets \
        --kanjivg /tmp/dl/kvg --hanzi-writer-data /tmp/npm/package

Upstream: PyPI ``kanjivg`` (unpacked wheel: kanji/*.svg + dist-info/licenses/COPYING),
npm ``hanzi-writer-data`` (unpacked package/: <char>.json + ARPHICPL.TXT), and the Debian
packages named in FONTS.
"""

import argparse
import glob
import gzip
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# key -> (Debian package, font file, face index in a collection, extra licence files)
FONTS = {
    "lxgw_wenkai": ("fonts-lxgw-wenkai", "/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0, ()),
    "seto": ("fonts-seto", "/usr/share/fonts/truetype/seto/setofont.ttf", 0, ()),
    "unpen": ("fonts-unfonts-extra", "/usr/share/fonts/truetype/unfonts-extra/UnPen.ttf", 0,
              ("/usr/share/common-licenses/GPL-2",)),
    "unpilgia": ("fonts-unfonts-extra", "/usr/share/fonts/truetype/unfonts-extra/UnPilgia.ttf", 0,
                 ("/usr/share/common-licenses/GPL-2",)),
    "ukai": ("fonts-arphic-ukai", "/usr/share/fonts/truetype/arphic/ukai.ttc", 0,
             ("/usr/share/doc/fonts-arphic-ukai/license/english/ARPHICPL.TXT.gz",)),
    "klee_one": ("fonts-klee", "/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf", 0, ()),
    "unpenheulim": ("fonts-unfonts-extra", "/usr/share/fonts/truetype/unfonts-extra/UnPenheulim.ttf", 0,
                    ("/usr/share/common-licenses/GPL-2",)),
}

# Name-table entries that carry the family name. OFL fonts may have Reserved Font Names
# (LXGW WenKai reserves "LXGW"), which a modified (subset) font must not keep.
_FAMILY_NAME_IDS = (1, 3, 4, 6, 16, 18, 21)


def _chars():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
    from hanja_live.train.charsets import ALL_CHARS
    return ALL_CHARS


def _fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def _copy_text(path, out_dir):
    """Copy a licence file into out_dir, unpacking Debian's gzipped docs."""
    name = os.path.basename(path)
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as src, open(os.path.join(out_dir, name[:-3]), "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        shutil.copyfile(path, os.path.join(out_dir, name))


def build_kanjivg(src_root, chars):
    out = os.path.join(HERE, "kanjivg")
    _fresh_dir(out)
    kanji = os.path.join(src_root, "kanji")
    count = 0
    for ch in chars:
        for suffix in ("", "-Kaisho"):
            name = f"{ord(ch):05x}{suffix}.svg"
            path = os.path.join(kanji, name)
            if os.path.exists(path):
                shutil.copyfile(path, os.path.join(out, name))
                count += 1
    licences = glob.glob(os.path.join(src_root, "kanjivg-*.dist-info", "licenses", "*"))
    for path in licences:
        shutil.copyfile(path, os.path.join(out, os.path.basename(path)))
    return count


def build_makemeahanzi(src_root, chars):
    out = os.path.join(HERE, "makemeahanzi")
    _fresh_dir(out)
    medians = {}
    for ch in chars:
        path = os.path.join(src_root, f"{ch}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                medians[ch] = json.load(f)["medians"]
    with open(os.path.join(out, "medians.json"), "w", encoding="utf-8") as f:
        json.dump(medians, f, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    shutil.copyfile(os.path.join(src_root, "ARPHICPL.TXT"), os.path.join(out, "ARPHICPL.TXT"))
    return len(medians)


def build_font(key, chars):
    from fontTools import subset
    from fontTools.ttLib import TTFont

    package, font_path, number, extra_licences = FONTS[key]
    out = os.path.join(HERE, "fonts", key)
    _fresh_dir(out)
    options = subset.Options()
    options.font_number = number
    options.layout_features = []
    options.hinting = False
    options.notdef_outline = False
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    font = subset.load_font(font_path, options)
    cmap = font.getBestCmap()
    present = [ch for ch in chars if ord(ch) in cmap]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(ch) for ch in present])
    subsetter.subset(font)
    new_family = f"HanjaLiveSubset{key.title().replace('_', '')}"
    for record in font["name"].names:
        if record.nameID in _FAMILY_NAME_IDS:
            record.string = new_family
    target = os.path.join(out, f"{key}.ttf")
    subset.save_font(font, target, options)
    # Fail here, not at generation time, if the written subset does not load.
    TTFont(target).getGlyphSet()
    shutil.copyfile(f"/usr/share/doc/{package}/copyright", os.path.join(out, "copyright"))
    for licence in extra_licences:
        _copy_text(licence, out)
    with open(os.path.join(out, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(f"Subset of {os.path.basename(font_path)} "
                f"(face {number}) from the Debian package {package}, cut to the {len(present)} "
                f"characters of hanja_live.train.charsets with fontTools; family renamed to "
                f"{new_family}. Licence: see copyright in this folder.\n")
    return len(present)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kanjivg", required=True, help="unpacked kanjivg wheel (has kanji/)")
    parser.add_argument("--hanzi-writer-data", required=True, help="unpacked npm package/ folder")
    args = parser.parse_args(argv)
    chars = _chars()
    print("kanjivg svgs:", build_kanjivg(args.kanjivg, chars))
    print("makemeahanzi chars:", build_makemeahanzi(args.hanzi_writer_data, chars))
    for key in FONTS:
        print(f"font {key}: {build_font(key, chars)} chars")


if __name__ == "__main__":
    main()
