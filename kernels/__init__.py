"""Recurrent and gated kernels (GLA, gated attention, sLSTM/LSTM): naive references, torch and Triton paths."""
