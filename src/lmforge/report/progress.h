// Training progress on stderr. On a terminal: one line redrawn in place (bar, step/total, loss,
// lr, tokens/s, elapsed<ETA). Elsewhere (logs, CI, pipes): plain lines every N steps or every
// few seconds, so log files stay readable.
//
// Contract
//  - update() is cheap when nothing is due (a clock read and a compare): call it every step.
//  - Output goes to options.out only; nothing is written from the destructor except finish().
//  - Not thread-safe; one Progress per process (rank 0).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace lmf {

// Everything one progress line shows. NaN fields are left out of the line.
struct ProgressState {
  std::string label;        // e.g. "pretrain"; may be empty
  int64_t step = 0;         // steps done
  int64_t total_steps = 0;  // 0 = unknown: no bar, no percentage, no ETA
  double loss = NAN;
  double lr = NAN;
  double tokens_per_s = NAN;
  double elapsed_s = 0;
  double eta_s = NAN;  // NaN = unknown
  std::string extra;   // appended as is, e.g. "mem 3.20 GiB"
};

// The text of one progress line (pure). With `bar` a [####....] bar of `bar_width` cells is
// drawn when total_steps > 0; the result is cut to `max_width` columns when max_width > 0.
//   "pretrain [####......]  120/1000  12% | loss 3.4521 | lr 3.00e-04 | 12.3k tok/s | 1m23s<10m12s"
//   "pretrain step 120/1000 (12%) | loss 3.4521 | lr 3.00e-04 | 12.3k tok/s | elapsed 1m23s | eta 10m12s"
std::string format_progress(const ProgressState& s, bool bar, int bar_width = 20, size_t max_width = 0);

struct ProgressOptions {
  enum class Mode { auto_detect, tty, plain };
  std::string label;
  int64_t total_steps = 0;        // 0 = unknown
  Mode mode = Mode::auto_detect;  // auto: tty when `out` is a terminal (isatty)
  int64_t every_steps = 0;        // plain: a line when step % every_steps == 0 (0 = by time only)
  double every_seconds = 10;      // plain: a line when this long passed since the last (0 = never)
  double redraw_seconds = 0.1;    // tty: redraw at most this often
  std::FILE* out = stderr;
  std::function<double()> clock;  // monotonic seconds; default std::chrono::steady_clock
};

// Fields of one update; NaN fields are not shown.
struct ProgressUpdate {
  int64_t step = 0;
  double loss = NAN;
  double lr = NAN;
  double tokens_per_s = NAN;
  std::string extra;
};

class Progress {
 public:
  explicit Progress(ProgressOptions options);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Records the latest step; draws when due (tty: redraw interval elapsed; plain: every_steps
  // or every_seconds reached, or the first and the last step).
  void update(const ProgressUpdate& u);
  // Prints a full log line (e.g. an eval result) without breaking the bar.
  void print_line(std::string_view text);
  // Draws the final state and ends the bar's line. Idempotent.
  void finish();

  bool is_tty() const { return tty_; }
  // The state the next line would show (for tests and for callers' own summaries).
  ProgressState state() const;

 private:
  void draw(bool final);
  double now() const;

  ProgressOptions opt_;
  bool tty_ = false;
  bool finished_ = false;
  bool drawn_on_line_ = false;  // tty: the bar is on the current line
  double start_time_ = 0;
  double last_draw_time_ = -1e300;
  int64_t last_drawn_step_ = -1;
  // The first update is the rate's reference point, so start-up time and steps done before a
  // resume do not distort the ETA.
  bool have_first_ = false;
  int64_t first_step_ = 0;
  double first_time_ = 0;
  ProgressUpdate last_;
  double last_time_ = 0;
};

}  // namespace lmf
