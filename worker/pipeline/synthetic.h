// A synthetic stand-in for the mask competition data set, drawn with
// OpenCV, so the pipeline, the demo and the tests have data without the
// real photographs. Each image shows a face-like figure at a varying
// position, scale and tilt (so cropping matters) over a varied background
// and lighting, with noise:
//   - mask state: wear (mask1..mask5) = a mask over nose and mouth;
//     incorrect (incorrect_mask) = a mask over mouth and chin, the nose
//     bare (a quarter of them pulled down to the chin only); normal = none;
//     mask colours are never skin tones;
//   - gender: hair shape, with no exceptions: women have long hair with
//     locks over the ears falling in front of the shoulders, men a short
//     cap above visible ears; hair has a darker edge so its shape shows on
//     any background; brows are heavier on men;
//   - age band: hair (dark and warm < 30; dark with light grey streaks
//     30-59; white or silver >= 60: told apart by texture and by dark vs
//     light, which a lighting gain cannot turn into each other) and thick
//     forehead lines (none, two, three, plus lines around eyes and mouth
//     from 60).
// The data set is a test fixture, so these cues are unambiguous and large
// enough to survive a crop resized to 48 x 64 (a real photo's are not).
// People follow the real task's balance: about 61% female and age bands
// about 46% / 47% / 7% (>= 60 rare); ids repeat now and then as in the real
// data. Everything is derived from the seed: same options => byte-equal
// files. Functions here are thread-safe (no shared state).
#ifndef SWEEPQ_WORKER_PIPELINE_SYNTHETIC_H_
#define SWEEPQ_WORKER_PIPELINE_SYNTHETIC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "opencv2/core.hpp"
#include "worker/pipeline/dataset.h"

namespace sweepq::worker {

// Width and height of every synthetic image (the competition's size).
inline constexpr int kSyntheticWidth = 384;
inline constexpr int kSyntheticHeight = 512;

// One synthetic person; the same person looks alike in all its images.
struct SyntheticPerson {
  // Six-digit id; may repeat across people.
  std::string id;
  // Gender as an int (Gender).
  int gender = 0;
  // Age in years.
  int age = 0;
  std::string race = "Asian";
  // Folder name and person key: <id>_<gender>_<race>_<age>.
  std::string folder;
  // Image file extension of this person (".jpg", some ".jpeg").
  std::string extension = ".jpg";
  // Seed of the person's appearance.
  uint64_t seed = 0;
};

// Where things are in one rendered image, in image pixels (clipped to the
// image), for tests that check attention maps (Grad-CAM) or crops.
struct SyntheticRegions {
  // Bounding box of the face with its hair.
  cv::Rect face;
  // Bounding box of the mask; empty (0 x 0) for MaskState::kNormal.
  cv::Rect mask;
  // Bounding box of nose, mouth and chin (where a worn mask sits), set for
  // every mask state.
  cv::Rect lower_face;
};

// The gender and age cues one person is drawn with (see the top comment).
struct SyntheticCues {
  // Long hair past the jaw (women) or a short cap (men).
  bool long_hair = false;
  // Hair colour (BGR) before lighting.
  cv::Scalar hair;
  // Light strands through the hair (30-59) and their colour.
  bool streaks = false;
  cv::Scalar streak;
  // Forehead lines: 0 (< 30), 2 (30-59) or 3 (>= 60).
  int forehead_lines = 0;
  // Lines around the eyes and the mouth (>= 60).
  bool eye_and_mouth_lines = false;
};

// Returns the cues `person` is drawn with. Deterministic.
SyntheticCues SyntheticPersonCues(const SyntheticPerson& person);

// Returns `count` people drawn from `seed` with the balance described
// above. When count >= 6 every gender x age band pair (default bounds)
// appears at least once, so a loaded data set has all 18 classes.
std::vector<SyntheticPerson> SampleSyntheticPeople(int count, uint64_t seed);

// Renders one kSyntheticWidth x kSyntheticHeight BGR image of `person` in
// `mask` state; `image_seed` varies pose, background, lighting, noise and
// the mask's look. Fills *regions when not null. Deterministic.
cv::Mat RenderSyntheticImage(const SyntheticPerson& person, MaskState mask,
                             uint64_t image_seed, SyntheticRegions* regions);

// One image written by WriteSyntheticMaskDataset.
struct SyntheticImage {
  // Path relative to the output directory, e.g.
  // "train/images/000001_female_Asian_45/mask1.jpg" or
  // "eval/images/<ImageID>".
  std::string path;
  // Person folder name.
  std::string person;
  // Eval images: the ImageID; empty for train images.
  std::string image_id;
  // Sub-labels, the age and the class under the default age bounds.
  int mask = 0;
  int gender = 0;
  int age = 0;
  int label = 0;
  SyntheticRegions regions;
};

// What WriteSyntheticMaskDataset wrote, in file order.
struct SyntheticManifest {
  std::vector<SyntheticPerson> people;
  std::vector<SyntheticImage> train;
  std::vector<SyntheticImage> eval;
};

// What to generate.
struct SyntheticOptions {
  // Output directory; created if missing. Must not already hold train/ or
  // eval/.
  std::string out_dir;
  // Training people (7 images each), >= 1.
  int people = 100;
  // Evaluation images (from other people, 7 a person, listed in shuffled
  // order); -1 = as many as people.
  int eval_images = -1;
  uint64_t seed = 0;
  // Rendering threads, >= 1; the output does not depend on it.
  int threads = 1;
  // JPEG quality in [1, 100].
  int jpeg_quality = 90;
};

// Writes the competition layout under options.out_dir:
//   train/train.csv (id,gender,race,age,path),
//   train/images/<folder>/{mask1..mask5,incorrect_mask,normal}<ext>,
//   eval/info.csv (ImageID,ans with ans 0), eval/images/<ImageID>,
//   eval/answers.csv (ImageID,ans with the true classes) and
//   synthetic_regions.csv (path,mask,face_*,mask_*,lower_face_* boxes as
//   x,y,width,height).
// Returns the manifest. Returns INVALID_ARGUMENT for bad options or an
// output directory that already holds a data set, and INTERNAL / the
// filesystem's cause naming the file when a directory or file cannot be
// written.
absl::StatusOr<SyntheticManifest> WriteSyntheticMaskDataset(
    const SyntheticOptions& options);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_SYNTHETIC_H_
