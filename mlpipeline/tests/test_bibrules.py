from dataclasses import dataclass

from mlpipeline.bibrules import CORRECTION_PENALTY, BibRules, near_miss


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float
    box: tuple = (0, 0, 10, 10)


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
