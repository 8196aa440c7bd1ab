"""Head-wise LSTM and sLSTM in the FlashRNN layout (Pöppel et al. 2024; xLSTM, arXiv 2405.04517).

- :func:`lstm`, :func:`slstm` — run over a precomputed input projection wx [B, T, 4, N, D] with
  block-diagonal recurrent weights r [4, N, D, D] and bias b [4, N, D]; states [S, B, N, D].
- :func:`lstm_step`, :func:`slstm_step` — one decode step.
- :func:`bench_cases` — benchmark cases for ``python -m reasonkit.kernels.bench``.

Implementations: ``naive.py`` (the defining loops and the equations), ``loop.py`` (torch, one bmm
per step), ``fused.py`` (Triton: the whole time loop in one kernel, recurrent weights on chip).
"""

from reasonkit.kernels.rnn.benchmark import bench_cases
from reasonkit.kernels.rnn.op import lstm, lstm_step, slstm, slstm_step

__all__ = ["bench_cases", "lstm", "lstm_step", "slstm", "slstm_step"]
