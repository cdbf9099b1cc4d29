"""Published figures the chapters may quote, each with its source (transcribed from REFERENCES.md).

Nothing measured by this course lives here: our own numbers come from result records. Where
REFERENCES.md marks a figure as reported rather than checked against the paper, `note` says so,
and a chapter that quotes it must say so too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    what: str
    source: str
    note: str | None = None

    def cite(self) -> str:
        caveat = f"; {self.note}" if self.note else ""
        return f"{self.what}: {self.value:,g} {self.unit} ({self.source}{caveat})"


JIA = "Jia et al. 2018, arXiv:1807.11205"
GOYAL = "Goyal et al. 2017, arXiv:1706.02677"
YOU = "You et al. 2017, arXiv:1708.03888"
MICIKEVICIUS = "Micikevicius et al. 2017, arXiv:1710.03740"
NVIDIA_DLE = "NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5 README"
PYTORCH_DDP = "pytorch/pytorch benchmarks/distributed/ddp/README.md"
NCCL_TESTS = "NVIDIA/nccl-tests doc/PERFORMANCE.md"
MCCANDLISH = "McCandlish et al. 2018, arXiv:1812.06162"
JIA_PRESS = "press coverage of " + JIA
SONY_BLOG = "NVIDIA's blog on Sony's record, comparison table"
REPORTED = "reported, not checked against the paper's tables"
DLE_BENCHMARK = "benchmark mode, synthetic data, 224x224"

# The paper the course follows.
JIA_2048_MINUTES = Figure(6.6, "min", "ResNet-50, 90 epochs on 2048 Tesla P40", JIA)
JIA_2048_TOP1 = Figure(75.8, "% top-1", "ResNet-50 accuracy on 2048 P40", JIA)
JIA_DOUBLING_SPEEDUP = Figure(1.32, "x", "speed-up from doubling 1024 to 2048 GPUs (8.7 / 6.6)", JIA_PRESS, REPORTED)
JIA_SCALING_EFFICIENCY = Figure(87.9, "%", "scaling efficiency on 2048 P40 over 100 Gbit Ethernet", SONY_BLOG)
JIA_BATCH = Figure(65536, "images", "largest global batch", JIA)
JIA_HYBRID_ALLREDUCE = Figure(11, "x", "hybrid all-reduce vs plain NCCL, ResNet-50 on 1024 P40 (up to)", JIA)

# Large batches.
GOYAL_BATCH = Figure(8192, "images", "batch without loss of accuracy (256 P100, 1 hour)", GOYAL)
GOYAL_TOP1 = Figure(76.3, "% top-1", "ResNet-50 at batch 8K", GOYAL)
GOYAL_SCALING_EFFICIENCY = Figure(90, "%", "scaling efficiency from 8 to 256 GPUs (about)", GOYAL)
GOYAL_BASE_LR = Figure(0.1, "per 256 images", "linear scaling rule lr = 0.1 x B / 256", GOYAL)
GOYAL_WARMUP_EPOCHS = Figure(5, "epochs", "gradual warm-up", GOYAL)
LARS_BATCH = Figure(32768, "images", "ResNet-50 batch 'without loss' with LARS (abstract)", YOU)

# Mixed precision.
FP16_UNDERFLOW_EXPONENT = Figure(-24, "power of 2", "fp16 flushes values below 2^-24 to zero", MICIKEVICIUS)
SSD_ZERO_GRADS = Figure(
    67, "%", "activation-gradient values exactly zero already in fp32 training (SSD, Fig. 3's zero bin)", MICIKEVICIUS
)
FP16_UPDATE_RATIO = Figure(2048, "", "an update smaller than weight/2048 is lost in fp16", MICIKEVICIUS)
LOSS_SCALE_MIN = Figure(8, "", "smallest loss scale the paper's networks used (range 8 to 32K)", MICIKEVICIUS)
LOSS_SCALE_MAX = Figure(32768, "", "largest loss scale the paper's networks used (range 8 to 32K)", MICIKEVICIUS)
A100_TF32_1GPU = Figure(938, "img/s", "ResNet-50 training, A100 80GB, 1 GPU, TF32", NVIDIA_DLE, DLE_BENCHMARK)
A100_AMP_1GPU = Figure(2470, "img/s", "ResNet-50 training, A100 80GB, 1 GPU, AMP", NVIDIA_DLE, DLE_BENCHMARK)
A100_AMP_8GPU = Figure(16621, "img/s", "ResNet-50 training, A100 80GB, 8 GPUs, AMP", NVIDIA_DLE)
V100_FP32_1GPU = Figure(367, "img/s", "ResNet-50 training, V100 16GB, 1 GPU, FP32", NVIDIA_DLE)
V100_AMP_1GPU = Figure(1200, "img/s", "ResNet-50 training, V100 16GB, 1 GPU, AMP", NVIDIA_DLE)
NVIDIA_AMP_TOP1 = Figure(77.12, "% top-1", "ResNet-50 v1.5 after 90 epochs, AMP", NVIDIA_DLE)
NVIDIA_TF32_TOP1 = Figure(76.95, "% top-1", "ResNet-50 v1.5 after 90 epochs, TF32", NVIDIA_DLE)
CPU_BF16_SLOWDOWN = Figure(
    30,
    "x slower",
    "ResNet-50 step at 32x32 under bf16 autocast vs fp32 on the "
    "course's 2-core CI machine (AMD EPYC, AVX2, no AVX-512/AMX)",
    "REFERENCES.md, measured on this project's CI machine",
)

# Data-parallel overhead.
DDP_BENCH_NO_DDP = Figure(329, "img/s", "ResNet-50, batch 32, V100, no DDP", PYTORCH_DDP)
DDP_BENCH_8GPU_PER_GPU = Figure(307, "img/s per GPU", "same on 8 GPUs (93%)", PYTORCH_DDP)
DDP_DEFAULT_BUCKET_MB = Figure(25, "MB", "DDP's default gradient bucket", PYTORCH_DDP)
DDP_SMALL_BUCKET_COST = Figure(2.6, "%", "cost of 1 MB gradient buckets on 8 GPUs", PYTORCH_DDP)

# Physical figures.
RESNET50_PARAMETERS = Figure(25_557_032, "parameters", "ResNet-50 (1000 classes)", "torchvision")
RESNET50_TRAIN_GFLOP = Figure(
    24.5, "GFLOP per image", "ResNet-50 training at 224x224 (~3x 8.2 GFLOP forward)", "REFERENCES.md, physical figures"
)
H100_SXM_BF16_TFLOPS = Figure(989, "TFLOP/s", "H100 SXM dense bf16 peak", "NVIDIA H100 datasheet")
H100_SXM_TF32_TFLOPS = Figure(495, "TFLOP/s", "H100 SXM dense TF32 peak", "NVIDIA H100 datasheet")
H100_SXM_FP32_TFLOPS = Figure(67, "TFLOP/s", "H100 SXM FP32 peak", "NVIDIA H100 datasheet")
A100_AMP_MFU = Figure(19, "% of bf16 peak", "A100 AMP ResNet-50: 2,470 img/s x 24.5 GFLOP", "REFERENCES.md")


def published_per_device_throughput() -> list[Figure]:
    """The single-device ResNet-50 training figures chapters compare with."""
    return [V100_FP32_1GPU, V100_AMP_1GPU, A100_TF32_1GPU, A100_AMP_1GPU, DDP_BENCH_NO_DDP]
