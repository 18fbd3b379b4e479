"""The open-hbird preset against open-hummingbird-eval's own answers on real VOC images (skipped when
../shared/ lacks them)."""

import pytest
from realdata import real_peer, real_voc, real_weights

from hummingbird.datasets.classes import VOC_CLASSES
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.evaluation.fidelity import PeerAnswers, compare_with_peer, reproduce_peer
from hummingbird.evaluation.protocols import PROTOCOLS
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures

pytestmark = pytest.mark.realdata


def test_open_hbird_preset_reproduces_the_peer_pixel_for_pixel():
    peer = PeerAnswers.load(real_peer("open-hbird"))
    name, weights = real_weights()
    root = real_voc()
    encoder = load_backbone(name, weights=weights, normalisation=PROTOCOLS["open-hbird"].normalisation)
    pred, gt = reproduce_peer(peer, root, TokenFeatures(encoder), LoaderOptions(batch_size=10, num_workers=2,
                                                                               progress=False))
    report = compare_with_peer(pred, gt, peer, list(VOC_CLASSES))
    print(f"\npixel agreement {report['pixel_agreement']:.5f} on {report['pixels_compared']} pixels; "
          f"Hungarian mIoU ours {report['ours']['open_hbird_hungarian_mIoU']:.5f}, peer "
          f"{report['peer']['reported_mIoU']:.5f}")
    assert report["ground_truth_identical"] and report["peer_confusion_matches_its_pixels"]
    assert report["pixel_agreement"] >= 0.999
    assert report["ours"]["open_hbird_hungarian_mIoU"] == pytest.approx(peer.settings["peer_reported_mIoU"], abs=1e-3)
    # the peer's own confusion matrix, scored by our metric, gives the number it reported
    assert report["peer"]["open_hbird_hungarian_mIoU"] == pytest.approx(peer.settings["peer_reported_mIoU"], abs=1e-9)


def test_augmented_fidelity_script_reports_seed_spread_and_kernel_change(tmp_path, capsys):
    from test_eval_scripts import _load

    script = _load("eval/fidelity_open_hbird_augmented.py")
    name, weights = real_weights()
    out = tmp_path / "spread.json"
    assert script.main(["--peer-dir", str(real_peer("open-hbird")), "--data-root", str(real_voc()),
                        "--backbone", name, "--weights", str(weights), "--limit", "2", "--seeds", "0", "1",
                        "--variants", "peer", "tensor-jitter", "--memory-sizes", "128", "--augmentation-epochs", "1",
                        "--no-progress", "--out", str(out)]) == 0
    import json

    report = json.loads(out.read_text())
    assert [(r["variant"], r["seed"], r["memory_rows"]) for r in report["runs"]] == [
        ("peer", 0, 128), ("peer", 1, 128), ("tensor-jitter", 0, 128), ("tensor-jitter", 1, 128)]
    spread, _, kernels = report["summary"]
    assert spread["std"] is not None and 0 < spread["seed_pair_pixel_agreement"][0] < 1  # seeds differ
    assert all(0.5 < a <= 1 for a in kernels["pillow_vs_tensor_pixel_agreement"])
    assert "Pillow − tensor kernels" in capsys.readouterr().out
