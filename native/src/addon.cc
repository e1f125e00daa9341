// Placeholder until the core addon lands (owned by the native-core work).
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(baton, Init)
