// Placeholder until the splice relay lands (owned by the relay work).
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(baton_relay, Init)
