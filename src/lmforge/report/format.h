// Human-readable numbers for progress lines, logs and reports. Pure functions.
#pragma once

#include <string>

namespace lmf {

// Wall time, two units, floored to the second: "0s", "42s", "3m05s", "1h02m", "2d03h".
// Negative, NaN or infinite -> "--" (an unknown ETA).
std::string format_duration(double seconds);

// Three significant digits with an SI suffix: 7 -> "7.00", 950 -> "950", 12345 -> "12.3k",
// 1.5e6 -> "1.50M", 2.345e9 -> "2.35G", up to "T" (and "P" beyond). NaN/inf -> "nan"/"inf".
std::string format_si(double v);

// Token throughput: 12345 -> "12.3k tok/s".
std::string format_rate(double tokens_per_s);

// Memory in binary units, three significant digits: 512 -> "512 B", 1536 -> "1.50 KiB",
// 3.2 * 2^30 -> "3.20 GiB".
std::string format_bytes(double bytes);

// Learning rate in scientific notation with 3 significant digits: 3e-4 -> "3.00e-04".
std::string format_lr(double lr);

// Loss with 4 decimals: "2.3456"; NaN -> "nan".
std::string format_loss(double loss);

}  // namespace lmf
