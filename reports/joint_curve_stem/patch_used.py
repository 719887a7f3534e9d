"""How joint_curve.json here was made, before ``guidance.config.visual_stem`` existed: ``pipelines.joint_curve``'s
run (the train stage's VQ-GAN+LG job, seed 0, tuned weights, scored on 400 val images, 4 mask draws) with a
residual conv stem patched into f_vt: x + conv3x3(relu(conv3x3(x))) over the B×64×16×16 code grid before the
transformer — the architecture ``visual_stem: conv`` now builds (its parameters are created first there, so
the initial weights differ). ``python reports/joint_curve_stem/patch_used.py --out DIR`` from the repo root
(PYTHONPATH=.), about 50 min on 2 cores. With the option: ``python -m pipelines.joint_curve --params P --steps 2000``
where P is params.yaml with ``visual_stem: conv`` under ``guidance.config``."""
import argparse, logging
from pathlib import Path
import torch, torch.nn as nn
from lgvq_core.guidance.visual_encoder import VisualTokenEncoder
from pipelines.joint_curve import learning_curve
from pipelines.probe_curve import plot
from pipelines.stage import write_json

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=2000)
p.add_argument("--every", type=int, default=500)
p.add_argument("--out", type=Path, required=True)
args = p.parse_args()
logging.basicConfig(level=logging.INFO)
orig_init, orig_features = VisualTokenEncoder.__init__, VisualTokenEncoder.features
def init(self, code_dim, num_tokens, out_dim, width=None, layers=2, heads=1):
    orig_init(self, code_dim, num_tokens, out_dim, width, layers, heads)
    self.stem = nn.Sequential(nn.Conv2d(code_dim, code_dim, 3, 1, 1), nn.ReLU(), nn.Conv2d(code_dim, code_dim, 3, 1, 1))
def features(self, quantized):
    return orig_features(self, quantized + self.stem(quantized))
VisualTokenEncoder.__init__, VisualTokenEncoder.features = init, features
curve = learning_curve(Path("params.yaml"), Path("data/shards"), base="vqgan", seed=0, steps=args.steps,
                       every=args.every, weights=Path("tune/best_loss_weights.yaml"))
args.out.mkdir(parents=True, exist_ok=True)
write_json(args.out / "curve.json", curve)
plot(curve, args.out / "curve.png", xlabel="training steps", title="joint, f_vt with conv stem")
for pt in curve["points"]:
    print(pt["step"], {k: round(pt[k], 1) for k in ("all_gain", "content_gain", "colour_gain", "shape_gain", "size_pattern_gain", "position_gain", "template_gain")})
