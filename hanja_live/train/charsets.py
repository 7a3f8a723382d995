"""Characters the synthetic data draws: the ten targets and the negatives grouped by kind.

Negatives are shapes a camera may see next to handwritten numerals and that a detector could
mistake for one (strokes of a similar count and direction). Shapes that are written exactly like
a target are left out on purpose, because labelling them "not a numeral" would contradict the
target class: katakana ニ (= 二), ハ (= 八), the long-vowel mark ー, em dash / horizontal bar
(= 一 by hand) and the lone Hangul vowel ㅡ (= 一). Short dashes stay: they differ from 一 by
length relative to the writing size, which the em-box scaling keeps.
"""

from hanja_live import CLASS_NAMES

TARGETS = tuple(CLASS_NAMES)

NEGATIVE_GROUPS = {
    # Few-stroke CJK characters and radicals built from the same horizontal / vertical /
    # sweeping strokes as the numerals (e.g. 工 土 士 干 vs 二 三 十, 匕 乜 vs 七, 丸 力 几 vs 九).
    "cjk_lookalike": (
        "工土士干王主玉川千人入口日曰匕乜力丸凡几刀乃文西匹丑互正巨大太犬木上下"
        "亠冂廾卜丁亍乙丶丨亅乂又儿小山子午牛壬未末本石古旦目田由甲申元兀云天夫"
        "丰井开廿卅世丈寸弋己已巳之止立亢穴兄"
    ),
    # Hangul: basic jamo and syllables, including the Korean numerals (일 이 삼 ... 십) that
    # sit next to hanja numerals on Korean paper.
    "hangul": (
        "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎㅏㅓㅗㅜㅣㅠ"
        "가나다라마바사아자차카타파하이그느드르므브스으즈크트프흐"
        "우구누두루무부수주오고노도로모보소조토포호요유에의은는을를"
        "일삼육칠팔십"
    ),
    "latin": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "digits": "0123456789",
    # Arithmetic signs and short dashes: hyphen, en dash, minus sign.
    "signs": "+×÷=-–−",
}

# Negatives the detector took for numerals on target-free test pages (丸 力 几 → 九, 千 → 十,
# 之 → 二 三, 므 ㅁ 口 乃 → 四, 入 人 → 八, 工 土 干 → 二 十) and their close kin; training draws
# them more often than the rest.
CONFUSERS = "丸力几凡千干之乃入人工土士王丑互正므ㅁ口日曰匹西"

NEGATIVES = tuple(ch for group in NEGATIVE_GROUPS.values() for ch in group)

ALL_CHARS = TARGETS + NEGATIVES


def group_of(char: str) -> str:
    """Name of the group a character belongs to: "target" or a NEGATIVE_GROUPS key."""
    if char in TARGETS:
        return "target"
    for name, chars in NEGATIVE_GROUPS.items():
        if char in chars:
            return name
    raise KeyError(f"{char!r} is neither a target nor a negative in hanja_live.train.charsets")
