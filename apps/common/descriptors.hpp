#pragma once

namespace hello::app {

// Many connections means many descriptors: takes the whole hard limit, as redis and nginx do.
void raise_descriptor_limit() noexcept;

// The descriptors this process may have open (the soft limit), as raised above.
[[nodiscard]] unsigned long long descriptor_limit() noexcept;

}  // namespace hello::app
