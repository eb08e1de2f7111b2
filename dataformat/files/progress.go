package files

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ShowProgress makes a run with o draw a progress bar of its input bytes on
// out, described by verb and the number of files ("encrypt 3 file(s)"), when
// out is a terminal; on anything else (a pipe, a log) nothing is drawn.
// Call finish when the run returns: it completes the bar and clears it.
func ShowProgress(out *os.File, verb string, o *Options) (finish func()) {
	if !term.IsTerminal(int(out.Fd())) {
		return func() {}
	}
	return progressTo(out, verb, o)
}

// progressTo sets o's Start and Progress to draw a bar on w.
func progressTo(w io.Writer, verb string, o *Options) (finish func()) {
	var bar *progressbar.ProgressBar
	o.Start = func(total int64, files int) {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(fmt.Sprintf("%s %d file(s)", verb, files)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	o.Progress = func(n int64) {
		if bar != nil {
			bar.Add64(n)
		}
	}
	return func() {
		if bar != nil {
			bar.Finish()
		}
	}
}
