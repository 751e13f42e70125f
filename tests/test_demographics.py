"""Per-class demographics against numbers worked by hand."""

from __future__ import annotations

import math

import pytest

from audit.dataset.demographics import Face, age_bands, aggregate, gender_skewness, wilson_interval


def faces(label: str, men: int, women: int, age_m: float = 40.0, age_f: float = 30.0) -> list[Face]:
    out = [Face(f"{label}/m{i}.jpg", label, age_m, 0.99) for i in range(men)]
    return out + [Face(f"{label}/f{i}.jpg", label, age_f, 0.01) for i in range(women)]


def test_skewness_of_690_men_and_104_women() -> None:
    skew, why = gender_skewness(["male"] * 690 + ["female"] * 104)
    assert why is None and round(skew, 4) == -2.1875  # (1 - 2p) / sqrt(p (1 - p)), p = 690 / 794
    p = 690 / 794
    assert skew == pytest.approx((1 - 2 * p) / math.sqrt(p * (1 - p)), rel=1e-12)
    assert gender_skewness(["female"] * 3 + ["male"])[0] == pytest.approx(1.1547005, rel=1e-6)  # p = 1/4


def test_skewness_undefined_cases_say_why() -> None:
    assert gender_skewness(["male"]) == (None, "fewer than 2 faces with a perceived gender")
    assert gender_skewness(["female", "female"]) == (None, "only one perceived gender (female)")


def test_wilson_interval_by_hand() -> None:
    lo, hi = wilson_interval(3, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.1078, 0.6032)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) is None


def test_age_bands_edges() -> None:
    bands = age_bands([0, 2.9, 3, 9.99, 10, 29, 30, 69.9, 70, 101])
    assert bands == {"0-2": 2, "3-9": 2, "10-19": 1, "20-29": 1, "30-39": 1, "40-49": 0, "50-59": 0,
                     "60-69": 1, "70+": 2}  # fmt: skip


def test_aggregate_per_class_and_overall() -> None:
    records = faces("a", men=3, women=1) + faces("b", men=1, women=1, age_f=20.0)
    records.append(Face("b/x.jpg", "b", 8.0, 0.55))  # gender confidence 0.55: abstains, still a face (a child)
    stats = aggregate(records, {"a": 10, "b": 4, "c": 2})
    a, b, c = stats["classes"]
    assert (a["class"], a["images"], a["images_with_faces"], a["faces"]) == ("a", 10, 4, 4)
    assert a["faces_per_image"] == pytest.approx(0.4)
    assert a["mean_age"] == pytest.approx((3 * 40 + 30) / 4)
    assert a["std_age"] == pytest.approx(math.sqrt((3 * 2.5**2 + 7.5**2) / 4))
    assert (a["mean_age_male"], a["mean_age_female"]) == (40.0, 30.0)
    assert a["female_share"] == 0.25 and a["gender_skewness"] == pytest.approx(-1.1547005, rel=1e-6)
    assert a["female_share_ci"] == pytest.approx(list(wilson_interval(1, 4)))
    assert (b["faces"], b["gendered_faces"], b["abstentions"], b["children"]) == (3, 2, 1, 1)
    assert b["gender_skewness"] == 0.0 and b["mean_age"] == pytest.approx((40 + 20 + 8) / 3)
    assert (c["faces"], c["faces_per_image"], c["mean_age"], c["female_share"]) == (0, 0.0, None, None)
    assert c["gender_skewness_undefined"] == "fewer than 2 faces with a perceived gender"
    overall = stats["overall"]
    assert (overall["images"], overall["faces"], overall["female_share"]) == (16, 7, 2 / 6)
    assert set(overall) == set(a)  # same keys as a class


def test_face_records_csv_round_trip_and_errors(tmp_path) -> None:
    from audit.dataset.face_records import read_face_records
    from audit.errors import InputError

    path = tmp_path / "faces.csv"
    path.write_text(
        "image,class,age,gender,det_score,gender_confidence\n"
        "a1.jpg,<b>cls</b>,31,female,0.9,\n"
        "a1.jpg,<b>cls</b>,45,M,0.8,0.7\n"
        "a2.jpg,<b>cls</b>,,,,\n"  # an image without faces
        'b1.jpg,"quote""d",7,0.2,,\n',
        encoding="utf-8",
    )
    rec = read_face_records(path)
    assert rec.images_per_class == {"<b>cls</b>": 2, 'quote"d': 1}
    assert rec.images_with_faces_per_class == {"<b>cls</b>": 1, 'quote"d': 1}
    assert [(f.age, f.p_male, f.gender_confidence) for f in rec.faces] == [
        (31.0, 0.0, None),
        (45.0, 1.0, 0.7),
        (7.0, 0.2, None),
    ]
    stats = aggregate(rec.faces, rec.images_per_class, rec.images_with_faces_per_class)
    assert stats["classes"][0]["faces_per_image"] == 1.0 and stats["classes"][1]["children"] == 1
    for body, message in [
        ("image,class,age\n", "missing column"),
        ("image,class,age,gender\nx.jpg,a,30,nonbinary\n", r"faces.csv:2: gender must be a number"),
        ("image,class,age,gender\nx.jpg,a,30,1.5\n", "probability of male"),
        ("image,class,age,gender\nx.jpg,a,-3,f\n", "age must be between"),
        ("image,class,age,gender\n", "no rows"),
    ]:
        path.write_text(body, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_face_records(path)


def test_backend_disagreement_by_hand() -> None:
    from audit.dataset.compare import disagreement, iou

    assert iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0 and iou([0, 0, 9, 9], [10, 10, 19, 19]) == 0.0
    assert iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)

    def face(box, p_male, age, conf=0.99):
        return {"box": box, "p_male": p_male, "age": age, "gender_confidence": conf}

    a = [
        {"image": "x", "status": "ok", "faces": [face([0, 0, 9, 9], 0.99, 30), face([20, 0, 29, 9], 0.01, 40)]},
        {"image": "y", "status": "ok", "faces": [face([0, 0, 9, 9], 0.99, 50, conf=0.55)]},
    ]
    b = [
        {"image": "x", "status": "ok", "faces": [face([1, 1, 10, 10], 0.01, 34), face([50, 50, 59, 59], 0.9, 20)]},
        {"image": "y", "status": "ok", "faces": [face([0, 0, 9, 9], 0.2, 45)]},
    ]
    d = disagreement(a, b)
    # matched: x face 1 (IoU 81/119) and y; only in a: x face 2; only in b: x face 2
    assert (d["faces_matched"], d["faces_only_first"], d["faces_only_second"]) == (2, 1, 1)
    assert d["detection_disagreement"] == 0.5
    assert (d["gender_compared"], d["gender_disagreement"]) == (1, 1.0)  # y abstains in a (0.55 < 0.6)
    assert d["mean_abs_age_difference"] == pytest.approx((4 + 5) / 2)
