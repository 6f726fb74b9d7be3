// libpoc_native.so is made of whole archives (poc_cpp, and the Rust staticlib once linked);
// this translation unit only gives the target a source of its own.
#include <poc/bridge.h>
