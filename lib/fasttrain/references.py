"""The course's reference list: published figures the chapters may quote, each with its source.

This module is the list; `docs/references.md` is the same list for reading, generated from it:

    python -m fasttrain.references > docs/references.md

(a test fails when the two differ). Each `Figure` names the publication or document it comes from.
Where a figure was reported rather than checked against the paper, or is derived from other
figures, `note` says so, and a chapter that quotes it must say so too. Statements without a single
number (an estimator, a shape of a curve, an API's behaviour) are `Finding`s.

Nothing this course measures on the reader's machine lives here: those numbers come from the run's
own result records. The one exception is marked as such: a figure measured on the course's own CI
machine, named, quoted as that machine's and never as the reader's.
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
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.what}: {_number(self.value)}{unit} ({self.source}{caveat})"


@dataclass(frozen=True)
class Finding:
    """A published statement without one number to quote (an estimator, a shape, a behaviour)."""

    what: str
    source: str
    note: str | None = None

    def cite(self) -> str:
        caveat = f"; {self.note}" if self.note else ""
        return f"{self.what} ({self.source}{caveat})"


def _number(value: float) -> str:
    """25557032 -> '25,557,032', 6.6 -> '6.6', 30.0 -> '30'."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,g}"


# ---------------------------------------------------------------------- sources
JIA = "Jia et al. 2018, arXiv:1807.11205"
JIA_PRESS = "press coverage of " + JIA
SONY_BLOG = "NVIDIA's blog on Sony's ImageNet record, comparison table"
GOYAL = "Goyal et al. 2017, arXiv:1706.02677"
YOU = "You et al. 2017, arXiv:1708.03888"
GOOGLE_TPU = "Google 2018, arXiv:1811.06992"
SONY = "Sony 2018, arXiv:1811.05233"
FUJITSU = "Fujitsu 2019, arXiv:1903.12650"
MLPERF = "MLCommons, MLPerf Training results"
MLPERF_V40_LOGS = "MLPerf Training v4.0, NVIDIA's result logs (run_stop - run_start)"
MCCANDLISH = "McCandlish et al. 2018, arXiv:1812.06162"
SHALLUE = "Shallue et al. 2018, arXiv:1811.03600"
MICIKEVICIUS = "Micikevicius et al. 2017, arXiv:1710.03740"
NVIDIA_DLE = "NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5 README"
CUDA_GUIDE = "NVIDIA CUDA C++ Programming Guide, arithmetic instruction throughput table"
COURSE_CI = "measured on this course's 2-core CI machine: AMD EPYC, AVX2, no AVX-512 or AMX"
PYTORCH_DDP = "pytorch/pytorch benchmarks/distributed/ddp/README.md"
NCCL_TESTS = "NVIDIA/nccl-tests doc/PERFORMANCE.md"
LIGHTNING_PARITY = "Lightning-AI/pytorch-lightning, parity tests tests/parity_*"
TORCH_FUTURES = "PyTorch documentation: torch.futures and DDP communication hooks"
TORCHVISION = "torchvision's ResNet-50 documentation"
H100_DATASHEET = "NVIDIA H100 Tensor Core GPU datasheet"
A100_DATASHEET = "NVIDIA A100 Tensor Core GPU datasheet"
AIRBENCH = "Keller Jordan, cifar10-airbench, arXiv:2404.00498"
AIRBENCH_README = "cifar10-airbench README (2025)"
FASTAI = "fast.ai, 'ImageNet in 18 minutes' (2018)"
FASHION_MNIST = "zalandoresearch/fashion-mnist README, benchmark table"
MNIST_FAST = "tuomaso/train_mnist_fast README"
FFCV = "libffcv/ffcv-imagenet README"
HOROVOD = "Horovod README"

REPORTED = "reported, not checked against the paper's tables"
DLE_BENCHMARK = "benchmark mode, synthetic data"
FASHION_SUBMITTED = "submitted results, not verified by the README's authors"

# ---------------------------------------------------------------------- the paper the course follows
JIA_2048_MINUTES = Figure(6.6, "min", "ResNet-50, 90 epochs on 2048 Tesla P40", JIA)
JIA_2048_TOP1 = Figure(75.8, "% top-1", "ResNet-50 accuracy on 2048 P40", JIA)
JIA_ALEXNET_MINUTES = Figure(4, "min", "AlexNet, 95 epochs", JIA)
JIA_ALEXNET_TOP1 = Figure(58.7, "% top-1", "AlexNet accuracy", JIA)
JIA_BATCH = Figure(65536, "images", "largest global batch (64K)", JIA)
JIA_1024_MINUTES = Figure(8.7, "min", "ResNet-50 on 1024 GPUs", JIA_PRESS, REPORTED)
JIA_1024_TOP1 = Figure(76.2, "% top-1", "ResNet-50 accuracy on 1024 GPUs", JIA_PRESS, REPORTED)
JIA_DOUBLING_SPEEDUP = Figure(
    1.32,
    "x",
    "ratio of reported training times from doubling 1024 to 2048 GPUs (8.7 / 6.6 min)",
    JIA_PRESS,
    REPORTED + "; a time-to-train ratio, not a throughput ratio",
)
JIA_SCALING_EFFICIENCY = Figure(87.9, "%", "scaling efficiency on 2048 P40 over 100 Gbit Ethernet", SONY_BLOG)
JIA_HYBRID_ALLREDUCE = Figure(11, "x", "hybrid all-reduce vs plain NCCL, ResNet-50 on 1024 P40 (up to)", JIA)
JIA_FINDINGS = (
    Finding(
        "mixed precision (fp16 compute, fp32 master weights), LARS, no weight decay on bias and batch-norm parameters",
        JIA + ", abstract",
        "on P40s, whose fp16 arithmetic is slow (P40_FP32_OVER_FP16): it paid in bytes, not in maths",
    ),
)

# ---------------------------------------------------------------------- large batches
GOYAL_BATCH = Figure(8192, "images", "batch without loss of accuracy (256 P100, 1 hour)", GOYAL)
GOYAL_TOP1 = Figure(76.3, "% top-1", "ResNet-50 at batch 8K", GOYAL)
GOYAL_SCALING_EFFICIENCY = Figure(90, "%", "scaling efficiency from 8 to 256 GPUs (about)", GOYAL)
GOYAL_BASE_LR = Figure(0.1, "per 256 images", "linear scaling rule lr = 0.1 x B / 256", GOYAL)
GOYAL_WARMUP_EPOCHS = Figure(5, "epochs", "gradual warm-up", GOYAL)
LARS_BATCH = Figure(32768, "images", "ResNet-50 batch 'without loss' with LARS (abstract)", YOU)
GOOGLE_TPU_MINUTES = Figure(2.2, "min", "ResNet-50 on 1024 TPUv3, to 76.3% top-1", GOOGLE_TPU)
SONY_SECONDS = Figure(224, "s", "ResNet-50 on 2176 V100, to 75.03% top-1", SONY)
FUJITSU_SECONDS = Figure(74.7, "s", "ResNet-50 on 2048 V100, batch 81,920, to 75.08% top-1", FUJITSU)
MLPERF_RESNET_TARGET = Figure(
    75.9, "% top-1", "MLPerf Training ResNet-50 target (the benchmark is now retired)", MLPERF
)
MLPERF_V30_MINUTES = Figure(0.183, "min", "MLPerf Training v3.0 ResNet-50, fastest: 3,584 H100", MLPERF)
MLPERF_V40_SECONDS = Figure(
    13.9, "s", "MLPerf Training v4.0 ResNet-50 on 2,528 H100, global batch 40,448, LARS", MLPERF
)
MLPERF_V40_PER_GPU = Figure(2780, "img/s per GPU", "the same v4.0 run (about)", MLPERF)
LARGE_BATCH_FINDINGS = (
    Finding("LARS: per-layer trust ratio eta x ||w|| / (||g|| + wd x ||w||)", YOU),
    Finding(
        "critical batch ~ gradient noise scale B_simple = tr(Sigma) / |G|^2; two-batch estimator from "
        "data-parallel training, B_small the per-rank batch (local gradient before the all-reduce), B_big "
        "the global batch: |G|^2 ~ (B_big |g_big|^2 - B_small |g_small|^2) / (B_big - B_small), "
        "S ~ (|g_small|^2 - |g_big|^2) / (1/B_small - 1/B_big), B_simple = S / |G|^2",
        MCCANDLISH,
    ),
    Finding(
        "steps to a fixed target fall about linearly with batch size ('perfect scaling'), then with "
        "diminishing returns, then not at all ('maximal data parallelism'); the knee depends on the "
        "workload, so the experiment for large batches fixes the target, not the epoch budget",
        SHALLUE,
    ),
)

# ---------------------------------------------------------------------- mixed precision
FP16_UNDERFLOW_EXPONENT = Figure(-24, "power of 2", "fp16 flushes values below 2^-24 to zero", MICIKEVICIUS)
SSD_ZERO_GRADS = Figure(
    67,
    "%",
    "activation-gradient values exactly zero already in fp32 training (SSD, Fig. 3's zero bin)",
    MICIKEVICIUS,
    "zeros of fp32 training (ReLU and friends), NOT a share that fp16 flushed: compare a measured flush "
    "share only with the nonzero values below 2^-24",
)
SSD_BELOW_FP16_EXAMPLE = Figure(
    2,
    "%",
    "activation-gradient values in [2^-34, 2^-32) (SSD, Fig. 3): nonzero, below fp16's range",
    MICIKEVICIUS,
    "one bin of the nonzero values that fp16 would flush",
)
FP16_UPDATE_RATIO = Figure(2048, "", "an update smaller than weight/2048 is lost in fp16", MICIKEVICIUS)
LOSS_SCALE_MIN = Figure(8, "", "smallest loss scale the paper's networks used (range 8 to 32K)", MICIKEVICIUS)
LOSS_SCALE_MAX = Figure(32768, "", "largest loss scale the paper's networks used (range 8 to 32K)", MICIKEVICIUS)
A100_TF32_1GPU = Figure(938, "img/s", "ResNet-50 training, A100 80GB, 1 GPU, TF32", NVIDIA_DLE, DLE_BENCHMARK)
A100_AMP_1GPU = Figure(2470, "img/s", "ResNet-50 training, A100 80GB, 1 GPU, AMP", NVIDIA_DLE, DLE_BENCHMARK)
A100_TF32_8GPU = Figure(7248, "img/s", "ResNet-50 training, A100 80GB, 8 GPUs, TF32", NVIDIA_DLE, DLE_BENCHMARK)
A100_AMP_8GPU = Figure(16621, "img/s", "ResNet-50 training, A100 80GB, 8 GPUs, AMP", NVIDIA_DLE, DLE_BENCHMARK)
A100_TF32_8GPU_SCALING = Figure(7.72, "x", "8-GPU over 1-GPU throughput, A100 80GB, TF32", NVIDIA_DLE, DLE_BENCHMARK)
A100_AMP_8GPU_SCALING = Figure(6.72, "x", "8-GPU over 1-GPU throughput, A100 80GB, AMP", NVIDIA_DLE, DLE_BENCHMARK)
V100_FP32_1GPU = Figure(367, "img/s", "ResNet-50 training, V100 16GB, 1 GPU, FP32", NVIDIA_DLE, DLE_BENCHMARK)
V100_AMP_1GPU = Figure(1200, "img/s", "ResNet-50 training, V100 16GB, 1 GPU, AMP", NVIDIA_DLE, DLE_BENCHMARK)
NVIDIA_AMP_TOP1 = Figure(77.12, "% top-1", "ResNet-50 v1.5 after 90 epochs, AMP", NVIDIA_DLE)
NVIDIA_TF32_TOP1 = Figure(76.95, "% top-1", "ResNet-50 v1.5 after 90 epochs, TF32", NVIDIA_DLE)
P40_FP32_OVER_FP16 = Figure(
    64,
    "x",
    "Tesla P40 (Pascal GP102, compute capability 6.1, no tensor cores): fp32 over fp16 arithmetic rate, "
    "128 against 2 results per clock per SM, i.e. fp16 at 1/64 of fp32",
    CUDA_GUIDE,
    "only GP100 (6.0) is fast in fp16: Jia et al.'s mixed precision paid in bytes (memory, fp16 gradients "
    "in the all-reduce), not in faster maths",
)
CPU_BF16_SLOWDOWN = Figure(
    30,
    "x slower",
    "ResNet-50 training step at 32x32 under bf16 autocast, against fp32 (about)",
    COURSE_CI,
    "that machine's figure, not necessarily this machine's",
)
MIXED_PRECISION_FINDINGS = (
    Finding(
        "fp32 master weights are needed; ImageNet CNNs needed no loss scaling; no end-to-end speed-up figure "
        "is reported (math units 2-8x faster)",
        MICIKEVICIUS,
    ),
    Finding("on the same machine, fp16 autocast was slower still than bf16", COURSE_CI),
)

# ---------------------------------------------------------------------- data-parallel overhead
DDP_BENCH_NO_DDP = Figure(329, "img/s", "ResNet-50, batch 32 per GPU, V100, NCCL, no DDP", PYTORCH_DDP)
DDP_BENCH_1GPU = Figure(319, "img/s", "same in DDP on 1 GPU (3% overhead)", PYTORCH_DDP)
DDP_BENCH_8GPU_PER_GPU = Figure(307, "img/s per GPU", "same on 8 GPUs (93%)", PYTORCH_DDP)
DDP_DEFAULT_BUCKET_MB = Figure(25, "MB", "DDP's default gradient bucket", PYTORCH_DDP)
DDP_SMALL_BUCKET_COST = Figure(2.6, "%", "cost of 1 MB gradient buckets on 8 GPUs", PYTORCH_DDP)
LIGHTNING_PARITY_EPOCH_S = Figure(
    0.05, "s per epoch", "Lightning over plain PyTorch on a small RNN (under)", LIGHTNING_PARITY
)
LIGHTNING_CPU_DDP_PARITY_S = Figure(0.02, "s", "2-process CPU DDP parity (within)", LIGHTNING_PARITY)
DATA_PARALLEL_FINDINGS = (
    Finding(
        "ring all-reduce lower bound t = (S / B) x 2(n-1)/n, S the bytes, B the link bandwidth, n the ranks",
        NCCL_TESTS,
    ),
    Finding("Fabric's median step time within 1% + 0.1 s of plain PyTorch", LIGHTNING_PARITY),
)

# ---------------------------------------------------------------------- physical figures
RESNET50_PARAMETERS = Figure(25_557_032, "parameters", "ResNet-50 (1000 classes)", TORCHVISION)
RESNET50_GRADIENT_MB = Figure(
    102.2, "MB", "ResNet-50's fp32 gradients per step", TORCHVISION, "derived: 4 bytes per parameter"
)
RESNET50_FORWARD_GFLOP = Figure(
    8.2,
    "GFLOP per image",
    "ResNet-50 forward pass at 224x224 (4.09 G multiply-adds)",
    TORCHVISION,
    "derived: 2 FLOP per multiply-add",
)
RESNET50_TRAIN_GFLOP = Figure(
    24.5,
    "GFLOP per image",
    "ResNet-50 training at 224x224 (~3x 8.2 GFLOP forward)",
    TORCHVISION,
    "derived: forward and backward ~3x the forward pass",
)
H100_SXM_BF16_TFLOPS = Figure(989, "TFLOP/s", "H100 SXM dense bf16 peak", H100_DATASHEET)
H100_SXM_TF32_TFLOPS = Figure(495, "TFLOP/s", "H100 SXM dense TF32 peak", H100_DATASHEET)
H100_SXM_FP32_TFLOPS = Figure(
    67, "TFLOP/s", "H100 SXM FP32 peak", H100_DATASHEET, "without tensor cores: low precision's fair baseline is TF32"
)
H100_PCIE_BF16_TFLOPS = Figure(756, "TFLOP/s", "H100 PCIe dense bf16 peak", H100_DATASHEET)
H100_HBM3_TBPS = Figure(3.35, "TB/s", "H100 SXM HBM3 memory bandwidth", H100_DATASHEET)
H100_NVLINK_TOTAL_GBPS = Figure(
    900, "GB/s", "H100 NVLink, both directions together (18 links)", H100_DATASHEET, "not the per-direction rate"
)
H100_NVLINK_PER_DIRECTION_GBPS = Figure(
    450,
    "GB/s",
    "H100 NVLink, each way: what a ring all-reduce's S / B uses",
    H100_DATASHEET,
    "derived: half of the 900 GB/s total",
)
A100_BF16_TFLOPS = Figure(312, "TFLOP/s", "A100 dense bf16 peak", A100_DATASHEET)
A100_TF32_TFLOPS = Figure(156, "TFLOP/s", "A100 dense TF32 peak", A100_DATASHEET)
A100_AMP_MFU = Figure(
    19,
    "% of bf16 peak",
    "A100 AMP ResNet-50: 2,470 img/s x 24.5 GFLOP against 312 TFLOP/s",
    f"{NVIDIA_DLE}; {A100_DATASHEET}",
    "derived from the figures above (typical ResNet-50 utilisation)",
)

# ---------------------------------------------------------------------- small-scale speed records
AIRBENCH_94_SECONDS = Figure(3.83, "s", "CIFAR-10 to 94% on one A100 (3.09 s compiled)", AIRBENCH)
AIRBENCH_96_SECONDS = Figure(34.7, "s", "CIFAR-10 to 96% on one A100", AIRBENCH)
RESNET18_CIFAR96_MINUTES = Figure(7, "min", "a standard ResNet-18 to 96% on CIFAR-10 (about)", AIRBENCH)
AIRBENCH94_MUON_SECONDS = Figure(
    2.59, "s", "airbench94_muon: CIFAR-10 to 94.01% on one A100, mean of 200 runs", AIRBENCH_README
)
FASTAI_IMAGENET_MINUTES = Figure(18.09, "min", "ImageNet on 128 V100 to 93.1% top-5", FASTAI)

# ---------------------------------------------------------------------- Fashion-MNIST and small targets
FMNIST_RESNET18 = Figure(94.9, "% accuracy", "Fashion-MNIST, ResNet18", FASHION_MNIST, FASHION_SUBMITTED)
FMNIST_WRN40_4 = Figure(96.7, "% accuracy", "Fashion-MNIST, WRN-40-4", FASHION_MNIST, FASHION_SUBMITTED)
FMNIST_MOBILENET = Figure(95.0, "% accuracy", "Fashion-MNIST, MobileNet", FASHION_MNIST, FASHION_SUBMITTED)
FMNIST_SMALL_CONV = Figure(
    92.5, "% accuracy", "Fashion-MNIST, 2-layer conv net under 100K parameters", FASHION_MNIST, FASHION_SUBMITTED
)
FMNIST_HUMAN = Figure(83.5, "% accuracy", "Fashion-MNIST, human performance", FASHION_MNIST)
MNIST_FAST_SECONDS = Figure(
    0.76, "s", "MNIST to 99% on a laptop GTX 1660 Ti, from a 2 min 52 s baseline in 8 notebook steps", MNIST_FAST
)
SMALL_TARGET_FINDINGS = (
    Finding(
        "logistic regression and other linear models reach the low-to-mid 80s on Fashion-MNIST (the README's "
        "sklearn benchmark), so a target at or below ~85% does not show that a deep network learned anything "
        "a linear model could not",
        FASHION_MNIST,
    ),
    Finding(
        "no published time-to-accuracy record for Fashion-MNIST was found (searched Nov 2026): the course's "
        "speedrun may define one, airbench-style (fixed target, n runs, mean and spread, hardware named)",
        "literature search for this course, Nov 2026",
    ),
)

# ---------------------------------------------------------------------- data parallelism at scale, later figures
MLPERF_V40_8H100_SECONDS = Figure(
    798, "s", "ResNet-50 on 8x H100 (13.3 min), global batch 3,200, LARS, to 75.9%", MLPERF_V40_LOGS
)
MLPERF_V40_8H200_SECONDS = Figure(
    721, "s", "ResNet-50 on 8x H200 (12.0 min), global batch 3,200, LARS, to 75.9%", MLPERF_V40_LOGS
)
FFCV_24_EPOCHS_MINUTES = Figure(21.7, "min", "ResNet-50 on 8 A100, 24 epochs, to 75.6% top-1", FFCV)
FFCV_88_EPOCHS_MINUTES = Figure(77.2, "min", "ResNet-50 on 8 A100, 88 epochs, to 78.4% top-1", FFCV)
HOROVOD_SCALING_EFFICIENCY = Figure(
    90, "%", "Inception V3 and ResNet-101 on 512 Pascal GPUs over 25 Gbit RoCE (68% for VGG-16)", HOROVOD
)
AT_SCALE_FINDINGS = (
    Finding(
        "for CUDA tensors a then() callback may run once the collective is enqueued, before it finishes on "
        "the GPU (values are synchronised with the stream, time is not): a host clock in a comm hook times "
        "enqueueing on a GPU; CUDA events on the communication stream, or torch.profiler, time the transfer",
        TORCH_FUTURES,
    ),
)

# ---------------------------------------------------------------------- the list, by topic
SECTIONS: tuple[tuple[str, tuple[Figure | Finding, ...]], ...] = (
    (
        "The paper the course follows",
        (
            JIA_2048_MINUTES,
            JIA_2048_TOP1,
            JIA_ALEXNET_MINUTES,
            JIA_ALEXNET_TOP1,
            JIA_BATCH,
            JIA_1024_MINUTES,
            JIA_1024_TOP1,
            JIA_DOUBLING_SPEEDUP,
            JIA_SCALING_EFFICIENCY,
            JIA_HYBRID_ALLREDUCE,
            *JIA_FINDINGS,
        ),
    ),
    (
        "Large batches",
        (
            GOYAL_BATCH,
            GOYAL_TOP1,
            GOYAL_SCALING_EFFICIENCY,
            GOYAL_BASE_LR,
            GOYAL_WARMUP_EPOCHS,
            LARS_BATCH,
            GOOGLE_TPU_MINUTES,
            SONY_SECONDS,
            FUJITSU_SECONDS,
            MLPERF_RESNET_TARGET,
            MLPERF_V30_MINUTES,
            MLPERF_V40_SECONDS,
            MLPERF_V40_PER_GPU,
            *LARGE_BATCH_FINDINGS,
        ),
    ),
    (
        "Mixed precision",
        (
            FP16_UNDERFLOW_EXPONENT,
            SSD_ZERO_GRADS,
            SSD_BELOW_FP16_EXAMPLE,
            FP16_UPDATE_RATIO,
            LOSS_SCALE_MIN,
            LOSS_SCALE_MAX,
            A100_TF32_1GPU,
            A100_AMP_1GPU,
            A100_TF32_8GPU,
            A100_AMP_8GPU,
            A100_TF32_8GPU_SCALING,
            A100_AMP_8GPU_SCALING,
            V100_FP32_1GPU,
            V100_AMP_1GPU,
            NVIDIA_AMP_TOP1,
            NVIDIA_TF32_TOP1,
            P40_FP32_OVER_FP16,
            CPU_BF16_SLOWDOWN,
            *MIXED_PRECISION_FINDINGS,
        ),
    ),
    (
        "Data-parallel overhead",
        (
            DDP_BENCH_NO_DDP,
            DDP_BENCH_1GPU,
            DDP_BENCH_8GPU_PER_GPU,
            DDP_DEFAULT_BUCKET_MB,
            DDP_SMALL_BUCKET_COST,
            LIGHTNING_PARITY_EPOCH_S,
            LIGHTNING_CPU_DDP_PARITY_S,
            *DATA_PARALLEL_FINDINGS,
        ),
    ),
    (
        "Physical figures",
        (
            RESNET50_PARAMETERS,
            RESNET50_GRADIENT_MB,
            RESNET50_FORWARD_GFLOP,
            RESNET50_TRAIN_GFLOP,
            H100_SXM_BF16_TFLOPS,
            H100_SXM_TF32_TFLOPS,
            H100_SXM_FP32_TFLOPS,
            H100_PCIE_BF16_TFLOPS,
            H100_HBM3_TBPS,
            H100_NVLINK_TOTAL_GBPS,
            H100_NVLINK_PER_DIRECTION_GBPS,
            A100_BF16_TFLOPS,
            A100_TF32_TFLOPS,
            A100_AMP_MFU,
        ),
    ),
    (
        "Small-scale speed records (for comparison of spirit, not of task)",
        (
            AIRBENCH_94_SECONDS,
            AIRBENCH_96_SECONDS,
            RESNET18_CIFAR96_MINUTES,
            AIRBENCH94_MUON_SECONDS,
            FASTAI_IMAGENET_MINUTES,
        ),
    ),
    (
        "Fashion-MNIST and other small-scale targets",
        (
            FMNIST_RESNET18,
            FMNIST_WRN40_4,
            FMNIST_MOBILENET,
            FMNIST_SMALL_CONV,
            FMNIST_HUMAN,
            MNIST_FAST_SECONDS,
            *SMALL_TARGET_FINDINGS,
        ),
    ),
    (
        "Data parallelism at scale, later figures",
        (
            MLPERF_V40_8H100_SECONDS,
            MLPERF_V40_8H200_SECONDS,
            FFCV_24_EPOCHS_MINUTES,
            FFCV_88_EPOCHS_MINUTES,
            HOROVOD_SCALING_EFFICIENCY,
            *AT_SCALE_FINDINGS,
        ),
    ),
)


def published_per_device_throughput() -> list[Figure]:
    """The single-device ResNet-50 training figures chapters compare with."""
    return [V100_FP32_1GPU, V100_AMP_1GPU, A100_TF32_1GPU, A100_AMP_1GPU, DDP_BENCH_NO_DDP]


def figures() -> dict[str, Figure | Finding]:
    """Every Figure and Finding of this module by its name (a Finding inside a tuple: TUPLE[i])."""
    out: dict[str, Figure | Finding] = {}
    for name, value in globals().items():
        if isinstance(value, (Figure, Finding)):
            out[name] = value
        elif name.endswith("_FINDINGS"):
            out.update({f"{name}[{i}]": f for i, f in enumerate(value)})
    return out


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """The whole reference list as Markdown, grouped by topic: what `docs/references.md` holds."""
    names = {id(f): n for n, f in figures().items()}
    lines = [
        "# Reference figures for the course",
        "",
        "Published figures the chapters may quote, each with its source, grouped by topic. This file is",
        "generated from `lib/fasttrain/references.py` (`python -m fasttrain.references > docs/references.md`);",
        "edit that module, not this file. In a notebook, `fasttrain.references.NAME.cite()` prints a figure",
        "with its source. Where a note says *reported* or *derived*, a chapter that quotes the figure says so",
        "too. Our own measurements do not live here: they come from each run's result records, on the",
        "reader's machine. The one figure measured on the course's own CI machine names that machine.",
    ]
    for title, items in SECTIONS:
        lines += ["", f"## {title}", ""]
        table = [f for f in items if isinstance(f, Figure)]
        found = [f for f in items if isinstance(f, Finding)]
        if table:
            lines += ["| name | value | unit | what | source | note |", "|---|---|---|---|---|---|"]
            lines += [
                "| "
                + " | ".join(
                    _cell(c) for c in (f"`{names[id(f)]}`", _number(f.value), f.unit, f.what, f.source, f.note or "")
                )
                + " |"
                for f in table
            ]
        if found:
            lines += [""] if table else []
            lines += [f"- {f.cite()}" for f in found]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
