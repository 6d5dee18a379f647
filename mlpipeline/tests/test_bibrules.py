import itertools
from dataclasses import dataclass, field

from mlpipeline.bibrules import CORRECTION_PENALTY, BibRules, near_miss
from mlpipeline.inference.bib_ocr import BibReading


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float
    #: each reading somewhere else on the photo unless a test places it
    box: tuple = field(default_factory=lambda: _somewhere_else())


_places = itertools.count()


def _somewhere_else() -> tuple:
    x = 20 * next(_places)
    return (x, 0, x + 10, 10)


def texts(tags):
    return [tag.text for tag in tags]


def test_it_keeps_digit_readings_without_leading_zeros():
    tags = BibRules().accept([Reading("0123", 0.9)])
    assert texts(tags) == ["123"]
    assert tags[0].confirmed is False


def test_it_drops_non_digits_and_empty_text():
    assert BibRules().accept([Reading("12a", 0.9), Reading("", 0.9), Reading("½", 0.9)]) == []


def test_it_applies_length_and_value_ranges():
    rules = BibRules(min_length=2, max_length=4, min_value=10, max_value=5000)
    tags = rules.accept([Reading(t, 0.9) for t in ("7", "12345", "6000", "42", "0042")])
    assert texts(tags) == ["42"]


def test_it_ignores_listed_numbers_like_the_year():
    rules = BibRules(ignore=frozenset({"2024", "042"}))
    assert texts(rules.accept([Reading("2024", 0.9), Reading("42", 0.8), Reading("77", 0.7)])) == ["77"]


def test_it_merges_duplicates_keeping_the_best():
    tags = BibRules().accept([Reading("77", 0.4, (1, 1, 2, 2)), Reading("077", 0.9, (5, 5, 9, 9)),
                              Reading("77", 0.6)])
    assert len(tags) == 1
    assert tags[0].confidence == 0.9
    assert tags[0].box == (5, 5, 9, 9)


def test_it_sorts_best_first():
    assert texts(BibRules().accept([Reading("11", 0.2), Reading("22", 0.8)])) == ["22", "11"]


def test_it_confirms_start_list_bibs_and_drops_others():
    rules = BibRules(start_list=frozenset({"3638", "0480"}))
    tags = rules.accept([Reading("3638", 0.9), Reading("480", 0.7), Reading("9999", 0.99)])
    assert texts(tags) == ["3638", "480"]
    assert all(tag.confirmed for tag in tags)


def test_it_corrects_an_unambiguous_near_miss_at_lower_confidence():
    rules = BibRules(start_list=frozenset({"3628", "71652"}))
    tags = rules.accept([Reading("13628", 1.0), Reading("71552", 0.5)])
    assert texts(tags) == ["3628", "71652"]
    assert tags[0].confidence == CORRECTION_PENALTY


def test_it_does_not_correct_when_two_bibs_are_equally_near():
    assert near_miss("976", frozenset({"979", "971"})) is None
    assert near_miss("12345", frozenset({"2345", "1234"})) is None


def test_it_does_not_correct_short_readings():
    assert near_miss("17", frozenset({"7", "11"})) is None


def test_it_drops_readings_below_the_confidence_floor():
    assert texts(BibRules(min_confidence=0.3).accept([Reading("12", 0.2), Reading("34", 0.5)])) == ["34"]


def test_it_corrects_a_lost_edge_digit_and_a_misread_first_digit():
    listed = frozenset({"71652", "2287", "891"})
    assert near_miss("1652", listed) == "71652"
    assert near_miss("0287", listed) == "2287"  # a misread 2 that came out as a 0
    assert near_miss("10891", listed) == "891"  # an edge digit before a leading zero


def test_a_lost_digit_is_not_guessed_when_several_bibs_fit():
    assert near_miss("165", frozenset({"1652", "7165"})) is None


def test_the_listed_alternative_wins_over_a_more_confident_misreading():
    reading = BibReading("8158", 0.9, (0, 0, 1, 1), (("8158", 0.9), ("858", 0.6), ("158", 0.5)))
    tags = BibRules(start_list=frozenset({"858", "158"})).accept([reading])
    assert [(tag.text, tag.confidence) for tag in tags] == [("858", 0.6)]


def test_without_a_start_list_the_most_confident_valid_alternative_is_kept():
    reading = BibReading("1234567", 0.9, (0, 0, 1, 1), (("1234567", 0.9), ("4567", 0.7)))
    assert texts(BibRules(max_length=5).accept([reading])) == ["4567"]
    assert texts(BibRules(min_confidence=0.8, max_length=5).accept([reading])) == []


def test_alternatives_below_the_floor_are_not_used_for_corrections():
    reading = BibReading("99", 0.9, (0, 0, 1, 1), (("99", 0.9), ("13628", 0.1)))
    assert BibRules(start_list=frozenset({"3628"}), min_confidence=0.3).accept([reading]) == []


def test_keeps_says_whether_a_reading_would_become_a_tag():
    rules = BibRules(start_list=frozenset({"2287", "4410"}), min_confidence=0.3)
    assert rules.keeps(Reading("2287", 0.9))
    assert rules.keeps(Reading("4416", 0.9))  # one slip from 4410: corrected
    assert not rules.keeps(Reading("77", 0.9))
    assert not rules.keeps(Reading("2287", 0.2))
    assert BibRules().keeps(Reading("77", 0.9))


def test_two_tags_on_the_same_digits_keep_the_more_confident():
    rules = BibRules(start_list=frozenset({"814", "80", "2287"}))
    tags = rules.accept([Reading("814", 0.9, (100, 100, 160, 130)),
                         Reading("80", 0.4, (100, 100, 140, 130)),  # a part of the same bib
                         Reading("2287", 0.8, (300, 100, 360, 130))])
    assert texts(tags) == ["814", "2287"]


def test_off_list_hands_back_bib_like_readings_the_start_list_does_not_have():
    rules = BibRules(start_list=frozenset({"101", "102"}), min_confidence=0.3, ignore={"2025"})
    readings = [Reading("101", 0.9), Reading("257", 0.8), Reading("0257", 0.6),
                Reading("2025", 0.9), Reading("777", 0.2), Reading("ab", 0.9)]
    kept = rules.accept(readings)

    dropped = rules.off_list(readings, kept)

    assert texts(kept) == ["101"]
    # The year is ignored, the 0.2 reading is noise, "257" is merged: one tag, unconfirmed.
    assert [(tag.text, tag.confidence, tag.confirmed) for tag in dropped] == [("257", 0.8, False)]


def test_off_list_leaves_out_near_misses_and_places_of_kept_tags():
    rules = BibRules(start_list=frozenset({"4721"}))
    kept_box = (0, 0, 100, 40)
    readings = [Reading("47218", 0.9), Reading("72", 0.7, (10, 5, 60, 35)),
                Reading("4721", 0.95, kept_box)]
    kept = rules.accept(readings)

    assert texts(kept) == ["4721"]
    assert rules.off_list(readings, kept) == []


def test_off_list_picks_the_most_confident_alternative_of_a_box():
    rules = BibRules(start_list=frozenset({"5"}))
    reading = BibReading("3", 0.5, (0, 0, 10, 10), (("850", 0.7), ("3", 0.5)))
    assert texts(rules.off_list([reading])) == ["850"]


def test_without_a_start_list_nothing_is_dropped_for_not_being_on_it():
    readings = [Reading("257", 0.9)]
    assert BibRules().off_list(readings, BibRules().accept(readings)) == []
