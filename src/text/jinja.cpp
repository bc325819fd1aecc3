#include "text/jinja.h"

#include "text/jinja_internal.h"

namespace pocket::jinja {

namespace {

std::string with_line(int line, const std::string& message, bool raised) {
  std::string prefix = line > 0 ? "template line " + std::to_string(line) + ": " : "template: ";
  return prefix + (raised ? "raise_exception: " : "") + message;
}

}  // namespace

TemplateError::TemplateError(int line, std::string message, bool raised)
    : Error(with_line(line, message, raised)),
      line_(line),
      message_(std::move(message)),
      raised_(raised) {}

Template::Template(std::string_view source, const Options& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  parse_template(source, *impl_);
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context,
                             const RenderOptions& options) const {
  Renderer renderer(*impl_, options);
  try {
    return renderer.render(context);
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& e) {
    throw TemplateError(0, e.what());
  }
}

}  // namespace pocket::jinja
