// Activation ids shared by every kernel, generated from the one activation table,
// pipeline/numerics/activations.py (ACTIVATIONS[name].kernel_id), by
// pipeline.gpu.kernels.activation_ids_header(); compilations through NVRTC use that
// text, and a test checks that this file is it.
#pragma once

#define PS_ACT_TANH 0
#define PS_ACT_RELU 1
#define PS_ACT_ERF 2
#define PS_ACT_LINEAR 3
#define PS_ACT_SIGMOID 4
