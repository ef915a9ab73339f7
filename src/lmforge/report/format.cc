#include "lmforge/report/format.h"

#include <cmath>
#include <cstdio>

namespace lmf {

namespace {

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// 3 significant digits for |v| < 1000 (the caller has scaled it): "7.00", "12.3", "950".
std::string three_digits(double v) {
  double a = std::fabs(v);
  if (a >= 99.95) return printf_string("%.0f", v);
  if (a >= 9.995) return printf_string("%.1f", v);
  return printf_string("%.2f", v);
}

// Scales `v` by `base` until its 3-digit rendering stays below `base`, then adds the unit.
std::string scaled(double v, double base, const char* const* units, int n_units, const char* sep) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  int u = 0;
  // Rounding can carry into the next unit (999.96 -> "1000"): compare after rounding to 3 digits.
  while (u + 1 < n_units && std::fabs(std::stod(three_digits(v))) >= base) {
    v /= base;
    u++;
  }
  std::string s = three_digits(v);
  if (units[u][0] != '\0') s += sep, s += units[u];
  return s;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  long long s = static_cast<long long>(std::floor(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
  }
  return buf;
}

std::string format_si(double v) {
  static const char* const units[] = {"", "k", "M", "G", "T", "P"};
  return scaled(v, 1000.0, units, 6, "");
}

std::string format_rate(double tokens_per_s) { return format_si(tokens_per_s) + " tok/s"; }

std::string format_bytes(double bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (std::isfinite(bytes) && std::fabs(bytes) < 1024 && bytes == std::floor(bytes))
    return printf_string("%.0f", bytes) + " B";  // whole bytes need no decimals
  return scaled(bytes, 1024.0, units, 6, " ");
}

std::string format_lr(double lr) {
  if (std::isnan(lr)) return "nan";
  return printf_string("%.2e", lr);
}

std::string format_loss(double loss) {
  if (std::isnan(loss)) return "nan";
  if (std::isinf(loss)) return loss > 0 ? "inf" : "-inf";
  return printf_string("%.4f", loss);
}

}  // namespace lmf
