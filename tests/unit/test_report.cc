#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "lmforge/core/error.h"
#include "lmforge/report/format.h"
#include "lmforge/report/metrics_log.h"
#include "lmforge/report/progress.h"
#include "lmforge/report/run_dir.h"
#include "test_util.h"

using namespace lmf;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string slurp(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  return s;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Format, Durations) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(42.9), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3600 + 2 * 60 + 59), "1h02m");
  EXPECT_EQ(format_duration(2 * 86400 + 3 * 3600 + 100), "2d03h");
  EXPECT_EQ(format_duration(-1), "--");
  EXPECT_EQ(format_duration(NAN), "--");
  EXPECT_EQ(format_duration(INFINITY), "--");
}

TEST(Format, Numbers) {
  EXPECT_EQ(format_si(7), "7.00");
  EXPECT_EQ(format_si(950), "950");
  EXPECT_EQ(format_si(12345), "12.3k");
  EXPECT_EQ(format_si(123456), "123k");
  EXPECT_EQ(format_si(1.5e6), "1.50M");
  EXPECT_EQ(format_si(2.345e9 + 1), "2.35G");
  EXPECT_EQ(format_si(999.96), "1.00k");  // rounding carries into the next unit
  EXPECT_EQ(format_si(999960), "1.00M");
  EXPECT_EQ(format_si(3e13), "30.0T");
  EXPECT_EQ(format_rate(12345), "12.3k tok/s");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(3.2 * 1024 * 1024 * 1024), "3.20 GiB");
  EXPECT_EQ(format_lr(3e-4), "3.00e-04");
  EXPECT_EQ(format_lr(0.0012345), "1.23e-03");
  EXPECT_EQ(format_loss(2.34567), "2.3457");
  EXPECT_EQ(format_loss(NAN), "nan");
  EXPECT_EQ(format_si(NAN), "nan");
}

TEST(Format, ProgressLines) {
  ProgressState s;
  s.label = "pretrain";
  s.step = 120;
  s.total_steps = 1000;
  s.loss = 3.45214;
  s.lr = 3e-4;
  s.tokens_per_s = 12345;
  s.elapsed_s = 83;
  s.eta_s = 612;
  EXPECT_EQ(
      format_progress(s, false),
      "pretrain step 120/1000 (12%) | loss 3.4521 | lr 3.00e-04 | 12.3k tok/s | elapsed 1m23s | eta 10m12s");
  EXPECT_EQ(format_progress(s, true, 10),
            "pretrain [#.........]  120/1000  12% | loss 3.4521 | lr 3.00e-04 | 12.3k tok/s | 1m23s<10m12s");
  EXPECT_EQ(format_progress(s, true, 10, 30), "pretrain [#.........]  120/100");
  // Unknown fields and total are left out.
  ProgressState u;
  u.step = 7;
  u.elapsed_s = 5;
  EXPECT_EQ(format_progress(u, false), "step 7 | elapsed 5s");
  EXPECT_EQ(format_progress(u, true), "step 7 | 5s<--");
  u.total_steps = 7;
  u.eta_s = 0;
  EXPECT_EQ(format_progress(u, true, 4), "[####] 7/7 100% | 5s<0s");
}

TEST(MetricsLog, LinesParseBack) {
  std::string dir = test::scratch_dir("metrics_log");
  std::string path = dir + "/runs/a/metrics.jsonl";  // parent folders are created
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> loss(0.5, 11.0), lr(1e-6, 1e-2);
  std::vector<nlohmann::json> written;
  {
    MetricsLog log(path);
    for (int step = 1; step <= 25; step++) {
      nlohmann::json rec = {
          {"step", step},     {"tokens", int64_t(step) * 4096}, {"loss", loss(gen)},
          {"lr", lr(gen)},    {"grad_norm", loss(gen) / 3},     {"tokens_per_s", 1e5 * loss(gen)},
          {"phase", "stable"}};
      log.write(rec);
      written.push_back(rec);
      // Flushed per line: the file holds every record written so far.
      if (step == 10) {
        EXPECT_EQ(MetricsLog::read(path).size(), 10u);
      }
    }
    EXPECT_THROW(log.write(nlohmann::json::array({1, 2})), Error);
  }
  auto back = MetricsLog::read(path);
  ASSERT_EQ(back.size(), written.size());
  for (size_t i = 0; i < back.size(); i++) {
    EXPECT_EQ(back[i]["step"], written[i]["step"]);
    EXPECT_EQ(back[i]["loss"].get<double>(), written[i]["loss"].get<double>());  // exact round trip
    EXPECT_EQ(back[i]["lr"].get<double>(), written[i]["lr"].get<double>());
    EXPECT_EQ(back[i]["phase"], "stable");
  }
  // One object per line, nothing else.
  std::string text = slurp(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 25);
  EXPECT_EQ(text.front(), '{');

  // Appending continues the file; NaN becomes null.
  {
    MetricsLog log(path);
    log.write({{"step", 26}, {"loss", NAN}});
  }
  back = MetricsLog::read(path);
  ASSERT_EQ(back.size(), 26u);
  EXPECT_TRUE(back[25]["loss"].is_null());

  // Resume from step 20: later records are dropped.
  MetricsLog::truncate_after_step(path, 20);
  back = MetricsLog::read(path);
  ASSERT_EQ(back.size(), 20u);
  EXPECT_EQ(back.back()["step"], 20);
}

TEST(MetricsLog, TornAndMalformedLines) {
  std::string dir = test::scratch_dir("metrics_torn");
  std::string path = dir + "/metrics.jsonl";
  std::ofstream(path) << "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"lo";  // crash mid-line
  ASSERT_EQ(MetricsLog::read(path).size(), 1u);
  {
    MetricsLog log(path);  // repairs the tail, then appends on a fresh line
    log.write({{"step", 2}, {"loss", 2.25}});
  }
  EXPECT_EQ(slurp(path), "{\"step\":1,\"loss\":2.5}\n{\"loss\":2.25,\"step\":2}\n");
  std::ofstream(path) << "{\"step\":1}\n[1,2]\n{\"step\":3}\n";
  EXPECT_EQ(error_of([&] { MetricsLog::read(path); }), path + ":2: expected a JSON object per line");
  std::ofstream(path) << "{\"step\":1}\n\n{\"step\":\n{\"step\":3}\n";
  EXPECT_EQ(error_of([&] { MetricsLog::read(path); }), path + ":3: malformed JSON");
  EXPECT_EQ(error_of([&] { MetricsLog::read(dir + "/missing.jsonl"); }),
            dir + "/missing.jsonl: cannot read: No such file or directory");
  // The parent "folder" is a file.
  EXPECT_EQ(error_of([&] { MetricsLog log(path + "/x"); }).rfind(path + "/x: cannot open for writing", 0),
            0u);
}

TEST(Progress, PlainLinesEveryNStepsAndAtTheEnd) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  double t = 100.0;
  {
    ProgressOptions o;
    o.label = "pretrain";
    o.total_steps = 25;
    o.mode = ProgressOptions::Mode::plain;
    o.every_steps = 10;
    o.every_seconds = 0;
    o.out = f;
    o.clock = [&] { return t; };
    Progress p(o);
    EXPECT_FALSE(p.is_tty());
    for (int step = 1; step <= 25; step++) {
      t += 2.0;  // 2 s per step
      p.update({step, 10.0 / step, 1e-3, 2048.0, ""});
    }
    // 24 steps took 48 s after the first update; 0 left at the end.
    EXPECT_DOUBLE_EQ(p.state().elapsed_s, 50.0);
    EXPECT_DOUBLE_EQ(p.state().eta_s, 0.0);
  }
  std::string out = slurp(f);
  std::fclose(f);
  EXPECT_EQ(out,
            "pretrain step 1/25 (4%) | loss 10.0000 | lr 1.00e-03 | 2.05k tok/s | elapsed 2s\n"
            "pretrain step 10/25 (40%) | loss 1.0000 | lr 1.00e-03 | 2.05k tok/s | elapsed 20s | eta 30s\n"
            "pretrain step 20/25 (80%) | loss 0.5000 | lr 1.00e-03 | 2.05k tok/s | elapsed 40s | eta 10s\n"
            "pretrain step 25/25 (100%) | loss 0.4000 | lr 1.00e-03 | 2.05k tok/s | elapsed 50s | eta 0s\n");
}

TEST(Progress, PlainLinesByTime) {
  std::FILE* f = std::tmpfile();
  double t = 0;
  {
    ProgressOptions o;
    o.mode = ProgressOptions::Mode::plain;
    o.every_seconds = 5;
    o.out = f;
    o.clock = [&] { return t; };
    Progress p(o);  // total unknown
    for (int step = 1; step <= 12; step++) {
      t += 1.5;
      p.update({step, NAN, NAN, NAN, ""});
    }
    p.print_line("eval: ppl 12.5");
    p.finish();
    p.finish();  // idempotent
  }
  std::string out = slurp(f);
  std::fclose(f);
  // First update at 1.5 s, then whenever 5 s passed since the last line (t = 7.5, 13.5),
  // and the final step at finish().
  EXPECT_EQ(out,
            "step 1 | elapsed 1s\nstep 5 | elapsed 7s\nstep 9 | elapsed 13s\neval: ppl 12.5\nstep 12 | "
            "elapsed 18s\n");
}

TEST(Progress, TtyRedrawsInPlace) {
  std::FILE* f = std::tmpfile();
  double t = 0;
  {
    ProgressOptions o;
    o.total_steps = 4;
    o.mode = ProgressOptions::Mode::tty;
    o.redraw_seconds = 0.5;
    o.out = f;
    o.clock = [&] { return t; };
    Progress p(o);
    EXPECT_TRUE(p.is_tty());
    t = 1;
    p.update({1, 2.0, NAN, NAN, ""});
    t = 1.2;
    p.update({2, 1.5, NAN, NAN, ""});  // too soon: not drawn
    p.print_line("hello");
    t = 3;
    p.update({4, 1.0, NAN, NAN, ""});  // the last step is always drawn
  }
  std::string out = slurp(f);
  std::fclose(f);
  EXPECT_EQ(out,
            "\r[#####...............] 1/4  25% | loss 2.0000 | 1s<--\033[K"
            "\r\033[Khello\n"
            "\r[##########..........] 2/4  50% | loss 1.5000 | 1s<0s\033[K"
            "\r[####################] 4/4 100% | loss 1.0000 | 3s<0s\033[K"
            "\r[####################] 4/4 100% | loss 1.0000 | 3s<0s\033[K\n");
}

TEST(RunDir, LayoutAndModes) {
  std::string root = test::scratch_dir("run_dir");
  std::string path = root + "/runs/tiny";
  RunDir run = RunDir::open(path, RunDir::Mode::fresh);
  EXPECT_TRUE(std::filesystem::is_directory(path + "/checkpoints"));
  EXPECT_EQ(run.config_path(), path + "/config.resolved.toml");
  EXPECT_EQ(run.metrics_path(), path + "/metrics.jsonl");
  EXPECT_EQ(run.checkpoint_path(100), path + "/checkpoints/step_000100");
  EXPECT_EQ(run.checkpoint_path(12345678), path + "/checkpoints/step_12345678");
  EXPECT_EQ(error_of([&] { RunDir::open(path, RunDir::Mode::resume); }),
            path + ": no run to resume (config.resolved.toml not found)");
  std::ofstream(run.config_path()) << "x = 1\n";
  EXPECT_EQ(error_of([&] { RunDir::open(path, RunDir::Mode::fresh); }),
            path + ": run folder already exists and is not empty");
  // Only complete checkpoints (trainer_state.json written last) count.
  for (int64_t s : {300, 100, 200}) {
    std::filesystem::create_directories(run.checkpoint_path(s));
    if (s != 300) std::ofstream(run.checkpoint_path(s) + "/trainer_state.json") << "{}";
  }
  std::filesystem::create_directories(path + "/checkpoints/step_abc");
  RunDir resumed = RunDir::open(path, RunDir::Mode::resume);
  EXPECT_EQ(resumed.checkpoint_steps(), (std::vector<int64_t>{100, 200}));
}
