// Placeholder entry point; replaced by the CLI registry.
#include <cstdio>
int main() {
  std::puts("lmforge");
  return 0;
}
