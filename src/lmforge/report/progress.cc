#include "lmforge/report/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "lmforge/report/format.h"

namespace lmf {

std::string format_progress(const ProgressState& s, bool bar, int bar_width, size_t max_width) {
  std::string out = s.label.empty() ? "" : s.label + " ";
  bool known_total = s.total_steps > 0;
  int pct = known_total ? static_cast<int>(std::clamp<int64_t>(100 * s.step / s.total_steps, 0, 100)) : 0;
  char buf[96];
  if (known_total && bar) {
    int filled =
        std::clamp(static_cast<int>(static_cast<int64_t>(bar_width) * s.step / s.total_steps), 0, bar_width);
    out.append("[").append(filled, '#').append(bar_width - filled, '.').append("] ");
    int digits = static_cast<int>(std::to_string(s.total_steps).size());
    std::snprintf(buf, sizeof(buf), "%*lld/%lld %3d%%", digits, static_cast<long long>(s.step),
                  static_cast<long long>(s.total_steps), pct);
  } else if (known_total) {
    std::snprintf(buf, sizeof(buf), "step %lld/%lld (%d%%)", static_cast<long long>(s.step),
                  static_cast<long long>(s.total_steps), pct);
  } else {
    std::snprintf(buf, sizeof(buf), "step %lld", static_cast<long long>(s.step));
  }
  out += buf;
  // (append, not "literal" + string: GCC 12 warns falsely (-Wrestrict) on the latter.)
  if (!std::isnan(s.loss)) out.append(" | loss ").append(format_loss(s.loss));
  if (!std::isnan(s.lr)) out.append(" | lr ").append(format_lr(s.lr));
  if (!std::isnan(s.tokens_per_s)) out.append(" | ").append(format_rate(s.tokens_per_s));
  if (!s.extra.empty()) out.append(" | ").append(s.extra);
  if (bar) {
    out.append(" | ").append(format_duration(s.elapsed_s)).append("<").append(format_duration(s.eta_s));
  } else {
    out.append(" | elapsed ").append(format_duration(s.elapsed_s));
    if (!std::isnan(s.eta_s)) out.append(" | eta ").append(format_duration(s.eta_s));
  }
  if (max_width > 0 && out.size() > max_width) out.resize(max_width);
  return out;
}

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Columns of the terminal behind `f`; 100 when unknown. One less is used so the cursor never
// wraps (a wrapped line cannot be redrawn with '\r').
size_t terminal_width(std::FILE* f) {
  struct winsize ws {};
  if (::ioctl(::fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) return ws.ws_col - 1;
  return 99;
}

}  // namespace

Progress::Progress(ProgressOptions options) : opt_(std::move(options)) {
  if (!opt_.clock) opt_.clock = steady_seconds;
  if (!opt_.out) opt_.out = stderr;
  switch (opt_.mode) {
    case ProgressOptions::Mode::tty:
      tty_ = true;
      break;
    case ProgressOptions::Mode::plain:
      tty_ = false;
      break;
    case ProgressOptions::Mode::auto_detect:
      tty_ = ::isatty(::fileno(opt_.out)) == 1;
      break;
  }
  start_time_ = now();
  last_time_ = start_time_;
}

Progress::~Progress() { finish(); }

double Progress::now() const { return opt_.clock(); }

ProgressState Progress::state() const {
  ProgressState s;
  s.label = opt_.label;
  s.step = last_.step;
  s.total_steps = opt_.total_steps;
  s.loss = last_.loss;
  s.lr = last_.lr;
  s.tokens_per_s = last_.tokens_per_s;
  s.extra = last_.extra;
  s.elapsed_s = last_time_ - start_time_;
  double dt = last_time_ - first_time_;
  int64_t dsteps = last_.step - first_step_;
  if (opt_.total_steps > 0 && last_.step >= opt_.total_steps) {
    s.eta_s = 0;
  } else if (opt_.total_steps > 0 && have_first_ && dt > 0 && dsteps > 0) {
    s.eta_s = static_cast<double>(opt_.total_steps - last_.step) * dt / static_cast<double>(dsteps);
  }
  return s;
}

void Progress::update(const ProgressUpdate& u) {
  if (finished_) return;
  double t = now();
  if (!have_first_) {
    have_first_ = true;
    first_step_ = u.step;
    first_time_ = t;
  }
  last_ = u;
  last_time_ = t;
  bool at_end = opt_.total_steps > 0 && u.step >= opt_.total_steps;
  bool due;
  if (tty_) {
    due = at_end || t - last_draw_time_ >= opt_.redraw_seconds;
  } else {
    due = last_drawn_step_ < 0 || at_end || (opt_.every_steps > 0 && u.step % opt_.every_steps == 0) ||
          (opt_.every_seconds > 0 && t - last_draw_time_ >= opt_.every_seconds);
  }
  if (due && u.step != last_drawn_step_) draw(false);
}

void Progress::draw(bool final) {
  ProgressState s = state();
  if (tty_) {
    std::string line = "\r";
    line.append(format_progress(s, true, 20, terminal_width(opt_.out))).append("\033[K");
    if (final) line += "\n";
    std::fputs(line.c_str(), opt_.out);
    drawn_on_line_ = !final;
  } else {
    std::string line = format_progress(s, false) + "\n";
    std::fputs(line.c_str(), opt_.out);
  }
  std::fflush(opt_.out);
  last_draw_time_ = now();
  last_drawn_step_ = s.step;
}

void Progress::print_line(std::string_view text) {
  std::string line = tty_ && drawn_on_line_ ? "\r\033[K" : "";
  line.append(text);
  line += "\n";
  std::fputs(line.c_str(), opt_.out);
  drawn_on_line_ = false;
  if (tty_ && have_first_ && !finished_) {
    last_drawn_step_ = -1;  // force the redraw below the printed line
    draw(false);
  } else {
    std::fflush(opt_.out);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!have_first_) return;
  if (tty_) {
    draw(true);
  } else if (last_drawn_step_ != last_.step) {
    draw(true);
  }
}

}  // namespace lmf
