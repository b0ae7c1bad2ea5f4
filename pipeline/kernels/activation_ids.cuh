// Activation ids shared by every kernel. They are the `kernel_id`s of the one activation table,
// pipeline/numerics/activations.py (ACTIVATIONS[name].kernel_id); a test parses these lines and
// compares them with that table, so the two cannot drift apart.
#pragma once

#define PS_ACT_TANH 0
#define PS_ACT_RELU 1
#define PS_ACT_ERF 2
#define PS_ACT_LINEAR 3
#define PS_ACT_SIGMOID 4
